//! A platform that never calls `SetPlatformCapabilities` may hand over a plain
//! `IAddInDefBase` without the `GetInterface` slot: the add-in must not call it. Its own
//! binary, because the capability level is process-wide, as in the platform.

use ws1c_host::{Host, HostOptions, Var};

#[test]
fn without_capabilities_the_add_in_never_asks_for_platform_interfaces() {
    let host = Host::load_without_capabilities(&ws1c_host::default_library_path())
        .expect("load the add-in");
    for class in ["Client", "Server", "SocketIO"] {
        let obj = host.create(class, HostOptions::default()).expect("create");
        assert_eq!(
            obj.conn().get_interface_calls(),
            0,
            "{class}: GetInterface was called"
        );
        assert_eq!(obj.get("РежимДоставки").unwrap(), Var::Str("Авто".into()));
        let conn = obj.conn();
        obj.destroy();
        assert_eq!(conn.calls_after_done(), 0);
    }
    let m = host.mem();
    assert_eq!((m.outstanding, m.unknown_frees), (0, 0), "{m:?}");
}
