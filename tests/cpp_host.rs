//! The C++ host: compiled by g++ from the project's own declarations in `abi/include/`,
//! so the compiler, not our Rust structs, decides where every vtable slot and field is.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn cpp_host_smoke_scenario_passes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out_dir = root.join("target").join("cpp");
    std::fs::create_dir_all(&out_dir).expect("target dir");
    let exe = out_dir.join("host");
    let status = Command::new("g++")
        .args(["-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("abi/include"))
        .arg(root.join("tests/cpp/host.cpp"))
        .arg("-ldl")
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("g++ must be installed (scripts/test.sh installs it)");
    assert!(status.success(), "g++ failed");
    let out = Command::new(&exe)
        .arg(ws1c_host::default_library_path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run the C++ host");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("not ok")).collect();
    assert!(
        out.status.success() && failed.is_empty(),
        "C++ host failed: {failed:#?}\n{stdout}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("cpp host: ") && summary.ends_with(" 0 failed"),
        "{summary}"
    );
    let passed: usize = summary
        .trim_start_matches("cpp host: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 100, "the C++ host ran only {passed} checks");
}
