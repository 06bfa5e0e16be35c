//! The package a 1C developer receives: `dist/WebSocket.zip`, made by `manifest/package.sh`.
//!
//! Ignored in a plain `cargo test` because it needs the package built first (a few minutes
//! cold); `scripts/test.sh` runs the packaging command and then this suite with `--ignored`.
//! `WS1C_PACKAGE` may point at another archive.
//!
//! Checked: the archive holds exactly MANIFEST.XML and the binaries it lists, in the form
//! 1C reads; every entry agrees with `manifest/MANIFEST.XML`; the Linux library is an
//! x86_64 ELF, stripped, needing at most GLIBC_2.17; and it loads in the emulated platform
//! and works, without the test-only members.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ws1c_host::{Host, HostOptions, Var};

const BUNDLE_NS: &str = "http://v8.1c.ru/8.2/addin/bundle";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn package_path() -> PathBuf {
    std::env::var_os("WS1C_PACKAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("dist/WebSocket.zip"))
}

/// Unpacks the archive into a fresh folder (Python's zipfile: no unzip tool needed) and
/// returns the folder and the entry names in archive order.
fn unpack(zip: &Path) -> (PathBuf, Vec<String>) {
    let dir = std::env::temp_dir().join(format!("ws1c-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             assert z.testzip() is None\n\
             z.extractall(sys.argv[2])\n\
             print('\\n'.join(z.namelist()))",
        )
        .arg(zip)
        .arg(&dir)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "cannot unpack {}: {}",
        zip.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (dir, names)
}

/// One `<component …/>` of a manifest: (os, path, type, arch).
type Component = (String, String, String, String);

fn attr(tag: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    let start = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    tag[start..start + tag[start..].find('"').unwrap()].to_owned()
}

/// The bundle's name and its components, checking the root element and namespace.
fn parse_manifest(xml: &str) -> (String, Vec<Component>) {
    assert!(
        xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#),
        "{xml}"
    );
    let bundle = &xml[xml.find("<bundle ").expect("<bundle>")..];
    let bundle_tag = &bundle[..bundle.find('>').unwrap()];
    assert_eq!(attr(bundle_tag, "xmlns"), BUNDLE_NS);
    assert!(xml.trim_end().ends_with("</bundle>"), "{xml}");
    let components = bundle
        .match_indices("<component ")
        .map(|(i, _)| {
            let tag = &bundle[i..i + bundle[i..].find("/>").expect("<component/>")];
            (
                attr(tag, "os"),
                attr(tag, "path"),
                attr(tag, "type"),
                attr(tag, "arch"),
            )
        })
        .collect();
    (attr(bundle_tag, "name"), components)
}

fn tool(cmd: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(cmd)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The highest `GLIBC_x.y[.z]` version the library's dynamic symbols need.
fn highest_glibc(lib: &Path) -> Option<Vec<u32>> {
    tool("objdump", &["-T"], lib)
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let parts: Vec<u32> = v.split('.').filter_map(|p| p.parse().ok()).collect();
            (!parts.is_empty()).then_some(parts)
        })
        .max()
}

#[test]
#[ignore = "needs dist/WebSocket.zip: run manifest/package.sh first (scripts/test.sh does)"]
fn the_package_is_what_1c_loads() {
    let zip = package_path();
    assert!(
        zip.exists(),
        "{} is missing: run manifest/package.sh",
        zip.display()
    );
    let (dir, names) = unpack(&zip);

    // MANIFEST.XML first, then exactly the binaries it lists.
    assert_eq!(names.first().map(String::as_str), Some("MANIFEST.XML"));
    let xml = std::fs::read_to_string(dir.join("MANIFEST.XML")).unwrap();
    let (name, components) = parse_manifest(&xml);
    assert_eq!(name, "WebSocket");
    let listed: BTreeSet<&str> = components.iter().map(|c| c.1.as_str()).collect();
    let packed: BTreeSet<&str> = names[1..].iter().map(String::as_str).collect();
    assert_eq!(listed, packed, "MANIFEST.XML lists exactly what is packed");
    assert_eq!(listed.len(), components.len(), "no path listed twice");

    // Each entry is one of manifest/MANIFEST.XML's, with the same os/arch/type.
    let template = std::fs::read_to_string(root().join("manifest/MANIFEST.XML")).unwrap();
    let (template_name, template_components) = parse_manifest(&template);
    assert_eq!(template_name, name);
    for c in &components {
        assert!(template_components.contains(c), "{c:?} not in the template");
        assert_eq!(c.2, "native");
    }

    // The Linux x86_64 library: always there, old-glibc, stripped.
    let linux = components
        .iter()
        .find(|c| c.0 == "Linux" && c.3 == "x86_64")
        .expect("a Linux x86_64 component");
    let lib = dir.join(&linux.1);
    let bytes = std::fs::read(&lib).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(bytes[4], 2, "64-bit ELF");
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 62, "x86_64");
    let glibc = highest_glibc(&lib).expect("GLIBC symbol versions");
    assert!(
        glibc <= vec![2, 17],
        "needs GLIBC_{glibc:?}, more than 2.17"
    );
    let sections = tool("readelf", &["-S", "-W"], &lib);
    assert!(!sections.contains(".symtab"), "not stripped");
    assert!(!sections.contains(".debug_"), "debug info left in");

    // Windows entries, when packed, are PE images of their machine.
    for c in components.iter().filter(|c| c.0 == "Windows") {
        let b = std::fs::read(dir.join(&c.1)).unwrap();
        assert_eq!(&b[..2], b"MZ", "{}", c.1);
        let pe = u32::from_le_bytes(b[0x3C..0x40].try_into().unwrap()) as usize;
        assert_eq!(&b[pe..pe + 4], b"PE\0\0", "{}", c.1);
        let machine = u16::from_le_bytes([b[pe + 4], b[pe + 5]]);
        let want = if c.3 == "x86_64" { 0x8664 } else { 0x014C };
        assert_eq!(machine, want, "{}", c.1);
    }

    // It loads in the emulated platform and works.
    let host = Host::load(&lib).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(host.class_names(), "Client|Server|SocketIO");
    assert_eq!(host.set_platform_capabilities(3), 3);
    let s = |v: &str| Var::Str(v.to_owned());
    {
        let server = host.create("Server", HostOptions::server()).unwrap();
        let client = host.create("Client", HostOptions::server()).unwrap();
        for obj in [&server, &client] {
            assert!(obj.find_method("ТестЭхо") < 0, "test-only members shipped");
            assert!(obj.find_prop("TestValue") < 0, "test-only members shipped");
            assert_eq!(
                obj.get("Версия").unwrap(),
                s(env!("CARGO_PKG_VERSION")),
                "the packed library is this version"
            );
        }
        assert_eq!(
            server
                .call("Запустить", &mut [s("127.0.0.1"), Var::I4(0)])
                .unwrap(),
            Var::Bool(true)
        );
        let port = server.get("Порт").unwrap().as_i64().unwrap();
        let url = format!("ws://127.0.0.1:{port}/package");
        assert_eq!(
            client.call("Подключиться", &mut [s(&url)]).unwrap(),
            Var::Bool(true)
        );
        client.call("Отправить", &mut [s("из архива")]).unwrap();
        let mut args = [Var::I4(5000), Var::I4(0), s("")];
        assert_eq!(server.call("Принять", &mut args).unwrap(), Var::Bool(true));
        assert_eq!(args[2], s("из архива"));
        let err = client.call("Подключиться", &mut [s(&url)]).unwrap_err();
        assert!(
            err.text.contains("Подключение уже выполнено"),
            "{}",
            err.text
        );
        client.call("Отключиться", &mut []).unwrap();
        server.call_proc("Остановить", &mut []).unwrap();
        client.destroy();
        server.destroy();
    }
    let mem = host.mem();
    assert_eq!(mem.outstanding, 0, "{mem:?}");
    assert_eq!(mem.unknown_frees, 0, "{mem:?}");
    assert_eq!(host.calls_after_done(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
