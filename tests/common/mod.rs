//! Shared helpers of the host tests: one loaded library per test process, objects created
//! the way the platform creates them, and the end-of-life checks every test repeats.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, OnceLock};

use ws1c_host::{Host, HostOptions, Obj};

/// The add-in, loaded once per test binary (as the platform loads it once per process).
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let host = Host::load_default();
        assert_eq!(host.set_platform_capabilities(3), 3);
        host
    })
}

/// A new object of `class` with the default (Russian, thin client) options.
pub fn create(class: &str) -> Obj {
    create_with(class, HostOptions::default())
}

/// A new object of `class` with `opts`.
pub fn create_with(class: &str, opts: HostOptions) -> Obj {
    host()
        .create(class, opts)
        .unwrap_or_else(|e| panic!("create {class}: {e:?}"))
}

/// Destroys `obj` as the platform does and checks what the platform would suffer from: a
/// call into it after `Done()`, or a protocol violation seen by the host.
pub fn finish(obj: Obj) {
    let conn = obj.conn();
    obj.destroy();
    assert_eq!(
        conn.calls_after_done(),
        0,
        "calls into the platform after Done()"
    );
    assert!(
        conn.violations().is_empty(),
        "protocol violations: {:?}",
        conn.violations()
    );
}

/// Serialises the tests of one binary: the platform's memory manager is process-wide, so
/// "nothing outstanding" can only be asserted while no other test is mid-call.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Host-wide memory checks: every buffer the add-in handed out was freed, and the add-in
/// freed nothing it did not own. Call with [`serial`] held, after destroying the objects.
pub fn assert_memory_clean() {
    let m = host().mem();
    assert_eq!(m.outstanding, 0, "platform allocations not freed: {m:?}");
    assert_eq!(
        m.unknown_frees, 0,
        "frees of pointers the platform never gave: {m:?}"
    );
}
