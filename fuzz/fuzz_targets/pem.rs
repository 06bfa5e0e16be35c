//! Certificate and key files once read: `certificates_from_pem`, `private_key_from_pem`
//! (PEM: PKCS#8 plain and encrypted, PKCS#1, SEC1, OpenSSL's legacy encryption) and `pfx_of`
//! (PKCS#12) on any bytes, with a password from a small set (the first byte picks it).
//! Never a panic; errors render in both languages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws1c::Lang;
use ws1c::tls::{certificates_from_pem, pfx_of, private_key_from_pem};

/// The seeds in fuzz/corpus/pem are encrypted with "test".
const PASSWORDS: [&str; 4] = ["", "test", "пароль", "wrong"];

fn texts(e: &ws1c::Error) {
    for lang in [Lang::Ru, Lang::En] {
        assert!(!e.text(lang).is_empty(), "empty error text in {lang:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let password = PASSWORDS[usize::from(pick) % PASSWORDS.len()];
    match certificates_from_pem("fuzz.pem", data) {
        Ok(certs) => assert!(!certs.is_empty()),
        Err(e) => texts(&e),
    }
    if let Err(e) = private_key_from_pem("fuzz.pem", data, password) {
        texts(&e);
    }
    if let Err(e) = pfx_of("fuzz.pfx", data, password) {
        texts(&e);
    }
});
