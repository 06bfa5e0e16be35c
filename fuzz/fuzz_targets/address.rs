//! Addresses: the client's URL (`Target::parse`, what `Подключиться` does with `Адрес`) and
//! the proxy URL (the `proxy` option, through `ClientOptions::parse`). Never a panic; an
//! accepted URL has a host and a non-zero port and its request line is ASCII that parses
//! again to the same target; an accepted proxy never shows its password; errors render in
//! both languages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws1c::Lang;
use ws1c::net::client::Target;
use ws1c::net::options::ClientOptions;

fn texts(e: &ws1c::Error) {
    for lang in [Lang::Ru, Lang::En] {
        assert!(!e.text(lang).is_empty(), "empty error text in {lang:?}");
    }
}

fuzz_target!(|text: &str| {
    match Target::parse(text) {
        Ok(t) => {
            assert!(!t.host.is_empty() && t.port != 0, "{t:?}");
            assert!(t.request.is_ascii(), "{t:?}");
            let again = Target::parse(&t.request).unwrap_or_else(|e| {
                panic!("request {:?} refused: {}", t.request, e.text(Lang::En))
            });
            assert_eq!(
                (&again.host, again.port, again.tls, &again.path),
                (&t.host, t.port, t.tls, &t.path),
                "{text:?}"
            );
        }
        Err(e) => texts(&e),
    }
    let options = serde_json::json!({ "proxy": text }).to_string();
    match ClientOptions::parse(&options) {
        Ok(o) => {
            if let Some(p) = o.proxy {
                assert!(p.port != 0 && !p.host.is_empty(), "{p:?}");
                let shown = p.display();
                if let Some((user, _)) = &p.auth {
                    assert!(shown.contains(&format!("{user}:***@")), "{shown}");
                }
            }
        }
        Err(e) => texts(&e),
    }
});
