//! `Параметры` of both objects: `ClientOptions::parse` (`Подключиться`) and
//! `ServerOptions::parse` (`Настроить`) on any UTF-8 text. Never a panic; an error renders
//! its text in both languages, non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws1c::Lang;
use ws1c::net::options::ClientOptions;
use ws1c::net::server::ServerOptions;

fn check_error(e: &ws1c::Error) {
    for lang in [Lang::Ru, Lang::En] {
        assert!(
            !e.text(lang).is_empty(),
            "empty error text in {lang:?}: {e:?}"
        );
    }
}

fuzz_target!(|text: &str| {
    match ClientOptions::parse(text) {
        Ok(o) => {
            // What parse accepted stays within its documented bounds.
            assert!(!o.timeout.is_zero());
            if let Some(p) = &o.proxy {
                assert!(p.port != 0 && !p.host.is_empty(), "{p:?}");
            }
        }
        Err(e) => check_error(&e),
    }
    if let Err(e) = ServerOptions::parse(text) {
        check_error(&e);
    }
});
