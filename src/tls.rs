//! TLS configuration (rustls with the ring provider, passed explicitly), and the loading of
//! certificates and keys.
//!
//! Files: only regular files are read, each kind with a size cap ([`cap`]), and every open
//! and read runs on a short-lived helper thread that the caller waits for at most
//! [`FILE_TIMEOUT`]. Why a thread: a path on a network share that stopped answering (or a
//! FIFO swapped in after the type check) blocks inside the kernel, and no portable API
//! cancels that; the caller — the 1C thread in `Запустить`, a connection task in
//! `Подключиться` — returns with an error naming the path, and the helper thread, holding
//! nothing but its own buffers, ends whenever the kernel lets it.
//!
//! PEM: parsed here section by section, so that every error names the file, the section
//! and what is wrong with it. Keys: PKCS#8 (plain or encrypted), PKCS#1 (`RSA PRIVATE KEY`)
//! and SEC1 (`EC PRIVATE KEY`), the last two also with OpenSSL's legacy encryption
//! (`Proc-Type: 4,ENCRYPTED`, `DEK-Info`: AES-128/192/256-CBC or DES-EDE3-CBC, key from
//! `EVP_BytesToKey` with MD5 and one round) through the RustCrypto ciphers.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    ServerName, UnixTime,
};

use crate::error::{
    AlertKind, ArgProblem, ArgRole, ArgUse, CertProblem, Error, FileError, FileKind,
    HandshakeProblem, PemProblem, Result, TlsError,
};
use crate::net::options::{Roots, TlsOptions};

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

// ---------------------------------------------------------------------------------------
// Files

/// How long a call waits for its files to open and read (documented in docs/api.*).
pub const FILE_TIMEOUT: Duration = Duration::from_secs(5);

/// The size cap of a file of `kind` (documented in docs/api.*): 1 MiB for a certificate
/// chain, a key or a PFX, 16 MiB for a CA bundle (a full system bundle is about 250 KB).
pub fn cap(kind: FileKind) -> u64 {
    match kind {
        FileKind::CaBundle => 16 << 20,
        _ => 1 << 20,
    }
}

/// The file a helper thread is working on, for the "did not answer" error.
type Current = Arc<Mutex<Option<(FileKind, String)>>>;

/// Reads a regular file of at most [`cap`] bytes; `current` records it first.
fn read_capped(current: &Current, kind: FileKind, path: &str) -> Result<Vec<u8>, FileError> {
    if let Ok(mut c) = current.lock() {
        *c = Some((kind, path.to_owned()));
    }
    let io = |error| FileError::Io {
        kind,
        path: path.to_owned(),
        error,
    };
    // metadata() does not open the file, so it returns at once for a FIFO or a device.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            kind,
            path: path.to_owned(),
        });
    }
    let limit = cap(kind);
    let too_large = || FileError::TooLarge {
        kind,
        path: path.to_owned(),
        limit,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(io)?;
    // The path may have been replaced between the two calls.
    if !file.metadata().map_err(io)?.is_file() {
        return Err(FileError::NotRegular {
            kind,
            path: path.to_owned(),
        });
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(data)
}

/// Whether `a` and `b` name the same file.
fn same_path(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Whether `path` names an existing regular file (`false` for anything else, errors too).
fn is_file(current: &Current, kind: FileKind, path: &str) -> bool {
    if let Ok(mut c) = current.lock() {
        *c = Some((kind, path.to_owned()));
    }
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

fn no_answer(current: &Current) -> Error {
    let (kind, path) = current
        .lock()
        .ok()
        .and_then(|c| c.clone())
        .unwrap_or((FileKind::Certificate, String::new()));
    Error::File(FileError::NoAnswer {
        kind,
        path,
        waited_ms: FILE_TIMEOUT.as_millis() as u64,
    })
}

/// Runs `job` (which reads files) on a helper thread and waits for it at most
/// [`FILE_TIMEOUT`], blocking the calling thread; for the 1C thread.
fn off_thread_bounded<T, F>(job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Current) -> Result<T> + Send + 'static,
{
    let current = Current::default();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let c = current.clone();
    std::thread::Builder::new()
        .name("ws1c-files".into())
        .spawn(move || {
            let _ = tx.send(job(&c));
        })
        .map_err(|e| Error::File(FileError::NoThread(e)))?;
    match rx.recv_timeout(FILE_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(no_answer(&current)),
    }
}

/// [`bounded`] for async callers: the task waits, the runtime worker does not.
async fn bounded_async<T, F>(job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Current) -> Result<T> + Send + 'static,
{
    let current = Current::default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let c = current.clone();
    std::thread::Builder::new()
        .name("ws1c-files".into())
        .spawn(move || {
            let _ = tx.send(job(&c));
        })
        .map_err(|e| Error::File(FileError::NoThread(e)))?;
    match tokio::time::timeout(FILE_TIMEOUT, rx).await {
        Ok(Ok(r)) => r,
        _ => Err(no_answer(&current)),
    }
}

// ---------------------------------------------------------------------------------------
// PEM

/// One `BEGIN`/`END` section of a PEM file.
struct Section {
    /// 1-based number among the file's sections.
    number: usize,
    label: String,
    /// `Name: value` lines before the body (legacy key encryption).
    headers: Vec<(String, String)>,
    der: Vec<u8>,
}

fn pem_error(path: &str, section: usize, label: &str, problem: PemProblem) -> Error {
    Error::Tls(TlsError::Pem {
        path: path.to_owned(),
        section,
        label: label.to_owned(),
        problem,
    })
}

/// The sections of a PEM file. Text outside sections is ignored, as OpenSSL does.
fn parse_pem(path: &str, data: &[u8]) -> Result<Vec<Section>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut open: Option<(Section, String)> = None;
    let mut number = 0;
    for line in text.lines() {
        let line = line.trim();
        let begin = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"));
        if let Some((sec, body)) = &mut open {
            if begin.is_some() {
                return Err(pem_error(
                    path,
                    sec.number,
                    &sec.label,
                    PemProblem::Unterminated,
                ));
            }
            if let Some(label) = line
                .strip_prefix("-----END ")
                .and_then(|l| l.strip_suffix("-----"))
            {
                if label != sec.label {
                    return Err(pem_error(
                        path,
                        sec.number,
                        &sec.label,
                        PemProblem::Unterminated,
                    ));
                }
                let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body.as_bytes())
                else {
                    return Err(pem_error(
                        path,
                        sec.number,
                        &sec.label,
                        PemProblem::BadBase64,
                    ));
                };
                sec.der = der;
                if let Some((sec, _)) = open.take() {
                    out.push(sec);
                }
                continue;
            }
            if body.is_empty()
                && let Some((name, value)) = line.split_once(':')
            {
                sec.headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            } else {
                body.push_str(line);
            }
        } else if let Some(label) = begin {
            number += 1;
            open = Some((
                Section {
                    number,
                    label: label.to_owned(),
                    headers: Vec::new(),
                    der: Vec::new(),
                },
                String::new(),
            ));
        }
    }
    if let Some((sec, _)) = open {
        return Err(pem_error(
            path,
            sec.number,
            &sec.label,
            PemProblem::Unterminated,
        ));
    }
    Ok(out)
}

/// Whether `data` is PEM text rather than DER (a PFX).
fn looks_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The certificates among `sections`, each checked to be one.
fn certs_of(path: &str, sections: &[Section]) -> Result<Vec<CertificateDer<'static>>> {
    use x509_cert::der::Decode;
    let mut certs = Vec::new();
    for s in sections.iter().filter(|s| s.label == "CERTIFICATE") {
        if x509_cert::Certificate::from_der(&s.der).is_err() {
            return Err(pem_error(path, s.number, &s.label, PemProblem::Damaged));
        }
        certs.push(CertificateDer::from(s.der.clone()));
    }
    Ok(certs)
}

const KEY_LABELS: [&str; 4] = [
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
];

fn has_key(sections: &[Section]) -> bool {
    sections
        .iter()
        .any(|s| KEY_LABELS.contains(&s.label.as_str()))
}

/// A private key read from a file, and whether it was encrypted.
struct LoadedKey {
    key: PrivateKeyDer<'static>,
    encrypted: bool,
}

/// A well-formed DER SEQUENCE, as every key format is: how a wrong password is told apart
/// from a right one when the padding happened to check out.
fn is_der_sequence(der: &[u8]) -> bool {
    der.first() == Some(&0x30) && pkcs8::der::Document::try_from(der).is_ok()
}

/// The first private key among `sections`, decrypted with `password` if it is encrypted.
fn key_of(path: &str, sections: &[Section], password: &str) -> Result<Option<LoadedKey>> {
    let Some(s) = sections
        .iter()
        .find(|s| KEY_LABELS.contains(&s.label.as_str()))
    else {
        return Ok(None);
    };
    let fail = |problem| pem_error(path, s.number, &s.label, problem);
    let legacy = s
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("Proc-Type") && v.ends_with("ENCRYPTED"));
    let encrypted = legacy || s.label == "ENCRYPTED PRIVATE KEY";
    if encrypted && password.is_empty() {
        return Err(fail(PemProblem::NeedsPassword));
    }
    let der = if s.label == "ENCRYPTED PRIVATE KEY" {
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(s.der.as_slice())
            .map_err(|_| fail(PemProblem::Damaged))?;
        info.decrypt(password)
            .map_err(|_| fail(PemProblem::WrongPasswordOrDamaged))?
            .as_bytes()
            .to_vec()
    } else if legacy {
        let dek = s
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("DEK-Info"))
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| fail(PemProblem::BadHeaders))?;
        legacy_decrypt(dek, password.as_bytes(), &s.der).map_err(fail)?
    } else {
        s.der.clone()
    };
    if !is_der_sequence(&der) {
        return Err(fail(if encrypted {
            PemProblem::WrongPasswordOrDamaged
        } else {
            PemProblem::Damaged
        }));
    }
    let key = match s.label.as_str() {
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        _ => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
    };
    Ok(Some(LoadedKey { key, encrypted }))
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one round, as the legacy PEM encryption uses:
/// `D1 = MD5(password ‖ salt)`, `Di = MD5(Di-1 ‖ password ‖ salt)`, until `len` bytes.
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut key = Vec::with_capacity(len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut h = Md5::new();
        h.update(&prev);
        h.update(password);
        h.update(salt);
        prev = h.finalize().to_vec();
        key.extend_from_slice(&prev);
    }
    key.truncate(len);
    key
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, PemProblem>
where
    C: cbc::cipher::BlockCipherDecrypt + cbc::cipher::KeyInit,
{
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| PemProblem::BadHeaders)?;
    let mut buf = data.to_vec();
    let plain = dec
        .decrypt_padded::<Pkcs7>(&mut buf)
        .map_err(|_| PemProblem::WrongPasswordOrDamaged)?;
    Ok(plain.to_vec())
}

/// Decrypts a legacy OpenSSL PEM body given its `DEK-Info` value.
fn legacy_decrypt(dek: &str, password: &[u8], data: &[u8]) -> Result<Vec<u8>, PemProblem> {
    let (cipher, iv) = dek.split_once(',').ok_or(PemProblem::BadHeaders)?;
    let cipher = cipher.trim().to_ascii_uppercase();
    let iv = hex(iv.trim()).ok_or(PemProblem::BadHeaders)?;
    let (key_len, iv_len) = match cipher.as_str() {
        "AES-128-CBC" => (16, 16),
        "AES-192-CBC" => (24, 16),
        "AES-256-CBC" => (32, 16),
        "DES-EDE3-CBC" => (24, 8),
        _ => {
            return Err(PemProblem::UnsupportedCipher(
                cipher.chars().take(40).collect(),
            ));
        }
    };
    if iv.len() != iv_len {
        return Err(PemProblem::BadHeaders);
    }
    // The salt is the IV's first 8 bytes.
    let key = bytes_to_key(password, &iv[..8], key_len);
    match cipher.as_str() {
        "AES-128-CBC" => cbc_decrypt::<aes::Aes128>(&key, &iv, data),
        "AES-192-CBC" => cbc_decrypt::<aes::Aes192>(&key, &iv, data),
        "AES-256-CBC" => cbc_decrypt::<aes::Aes256>(&key, &iv, data),
        _ => cbc_decrypt::<des::TdesEde3>(&key, &iv, data),
    }
}

/// Certificates from a PEM file of `kind` (a chain, or a CA bundle).
fn load_certs(
    current: &Current,
    kind: FileKind,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>> {
    let data = read_capped(current, kind, path)?;
    certificates_from_pem(path, &data)
}

/// The certificates of PEM `data` read from `path` (named in errors), each checked to be
/// one; at least one. What every PEM certificate file goes through once read (also the
/// entry point of the fuzz target `pem`).
pub fn certificates_from_pem(path: &str, data: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = certs_of(path, &parse_pem(path, data)?)?;
    if certs.is_empty() {
        return Err(Error::Tls(TlsError::NoCertificates {
            path: path.to_owned(),
        }));
    }
    Ok(certs)
}

/// The first private key of PEM `data` read from `path` (named in errors), decrypted with
/// `password` if it is encrypted, and whether it was: what a separate key file goes through
/// once read (also the entry point of the fuzz target `pem`). `None`: no key section.
pub fn private_key_from_pem(
    path: &str,
    data: &[u8],
    password: &str,
) -> Result<Option<(PrivateKeyDer<'static>, bool)>> {
    Ok(key_of(path, &parse_pem(path, data)?, password)?.map(|k| (k.key, k.encrypted)))
}

/// The certificate chain and key of PKCS#12 data read from `path` (also the entry point of
/// the fuzz target `pem`).
pub fn pfx_of(
    path: &str,
    data: &[u8],
    password: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let store = p12_keystore::KeyStore::from_pkcs12(
        data,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|_| {
        Error::Tls(TlsError::Pfx {
            path: path.to_owned(),
            no_key: false,
        })
    })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(Error::Tls(TlsError::Pfx {
            path: path.to_owned(),
            no_key: true,
        }));
    };
    let certs = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}

/// `chain` and `key` as one checked identity: the key type is supported and, where rustls
/// can tell, the key is the certificate's.
fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &str,
    key_path: &str,
    client: bool,
) -> Result<Arc<CertifiedKey>> {
    let mismatch = |checked| {
        Error::Tls(TlsError::KeyMismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            checked,
            client,
        })
    };
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|_| mismatch(false))?;
    let ck = CertifiedKey::new(chain, key);
    match ck.keys_match() {
        Ok(()) => Ok(Arc::new(ck)),
        // The public key's type is unknown to rustls: it cannot tell, the handshake will.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(Arc::new(ck)),
        Err(_) => Err(mismatch(true)),
    }
}

/// `tls.insecure`: accepts any certificate. Handshake signatures are still checked, so the
/// connection is encrypted, but the peer is not authenticated: anyone in the middle can read it.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client certificate side of a connection: offers the configured certificate, if
/// any, and remembers whether the server asked for one, so that a refusal without a
/// certificate can be named as such (under TLS 1.3 the server checks after the handshake and
/// may just hang up).
#[derive(Debug)]
pub struct ClientAuth {
    identity: Option<Arc<CertifiedKey>>,
    asked: AtomicBool,
}

impl ClientAuth {
    /// The server asked for a client certificate and we had none.
    pub fn asked_without_certificate(&self) -> bool {
        self.identity.is_none() && self.asked.load(Ordering::Relaxed)
    }
}

impl ResolvesClientCert for ClientAuth {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        // Also without a certificate: resolve() must be asked so that we learn the server
        // wanted one (we then answer with an empty certificate list).
        true
    }
}

/// Subject and issuer of a DER certificate, for the diagnostic log.
pub fn describe_cert(der: &[u8]) -> String {
    use x509_cert::der::Decode;
    match x509_cert::Certificate::from_der(der) {
        Ok(c) => format!(
            "subject \"{}\", issuer \"{}\"",
            c.tbs_certificate().subject(),
            c.tbs_certificate().issuer()
        ),
        Err(e) => format!("unparsable certificate ({e})"),
    }
}

// ---------------------------------------------------------------------------------------
// Server

fn arg(value: &str, role: ArgRole) -> ArgUse {
    ArgUse {
        value: value.to_owned(),
        role: if value.is_empty() {
            ArgRole::Empty
        } else {
            role
        },
    }
}

fn args_error(problem: ArgProblem, args: [ArgUse; 3]) -> Error {
    Error::Tls(TlsError::ServerArgs { problem, args })
}

/// The server identity from the certificate arguments of `Запустить`, on the file thread.
///
/// The forms, decided by the content of `cert` (never by its name) and by whether
/// `key_or_password` names a file:
/// - a PKCS#12 file: `key_or_password` (or `password`) is its password;
/// - a PEM with certificates and a key: `key_or_password` (or `password`) is the key's
///   password;
/// - a PEM with certificates only: `key_or_password` is the key file, `password` its password.
///
/// Every argument given must be used: a password for a key that is not encrypted, a key
/// file beside a PEM that already holds one, or a second password raise, saying what each
/// argument was understood as (a mistyped key path is never taken for a password).
fn server_identity(
    current: &Current,
    cert: &str,
    key_or_password: &str,
    password: &str,
) -> Result<Arc<CertifiedKey>> {
    let data = read_capped(current, FileKind::Certificate, cert)?;
    let second_is_file =
        !key_or_password.is_empty() && is_file(current, FileKind::Key, key_or_password);
    if !looks_pem(&data) {
        let roles = |second| {
            [
                arg(cert, ArgRole::Pfx),
                arg(key_or_password, second),
                arg(password, ArgRole::Password),
            ]
        };
        if second_is_file {
            return Err(args_error(ArgProblem::KeyTwice, roles(ArgRole::KeyFile)));
        }
        if !key_or_password.is_empty() && !password.is_empty() {
            return Err(args_error(
                ArgProblem::PasswordTwice,
                roles(ArgRole::Password),
            ));
        }
        let pass = if key_or_password.is_empty() {
            password
        } else {
            key_or_password
        };
        let (chain, key) = pfx_of(cert, &data, pass)?;
        return certified(chain, key, cert, cert, false);
    }
    let sections = parse_pem(cert, &data)?;
    let chain = certs_of(cert, &sections)?;
    if chain.is_empty() {
        return Err(Error::Tls(TlsError::NoCertificates {
            path: cert.to_owned(),
        }));
    }
    if has_key(&sections) {
        let roles = |second| {
            [
                arg(cert, ArgRole::CombinedPem),
                arg(key_or_password, second),
                arg(password, ArgRole::Password),
            ]
        };
        // The same combined file named again as the key file: the key is in it, the
        // password is the third argument.
        let same_file = second_is_file && same_path(cert, key_or_password);
        if second_is_file && !same_file {
            return Err(args_error(ArgProblem::KeyTwice, roles(ArgRole::KeyFile)));
        }
        if !same_file && !key_or_password.is_empty() && !password.is_empty() {
            return Err(args_error(
                ArgProblem::PasswordTwice,
                roles(ArgRole::Password),
            ));
        }
        let pass = if key_or_password.is_empty() || same_file {
            password
        } else {
            key_or_password
        };
        let Some(k) = key_of(cert, &sections, pass)? else {
            return Err(Error::Tls(TlsError::NoKey {
                path: cert.to_owned(),
            }));
        };
        if !k.encrypted && !pass.is_empty() {
            let second = if same_file {
                ArgRole::KeyFile
            } else {
                ArgRole::Password
            };
            return Err(args_error(ArgProblem::PasswordUnused, roles(second)));
        }
        return certified(chain, k.key, cert, cert, false);
    }
    let roles = [
        arg(cert, ArgRole::CertificatePem),
        arg(key_or_password, ArgRole::KeyFile),
        arg(password, ArgRole::Password),
    ];
    if key_or_password.is_empty() {
        return Err(args_error(ArgProblem::NoKey, roles));
    }
    if !second_is_file {
        return match std::fs::metadata(key_or_password) {
            // Exists but is no regular file: say so.
            Ok(_) => Err(read_capped(current, FileKind::Key, key_or_password)
                .err()
                .map_or_else(
                    || args_error(ArgProblem::KeyFileMissing, roles),
                    Error::File,
                )),
            Err(_) => Err(args_error(ArgProblem::KeyFileMissing, roles)),
        };
    }
    let key_data = read_capped(current, FileKind::Key, key_or_password)?;
    let Some((key, encrypted)) = private_key_from_pem(key_or_password, &key_data, password)? else {
        return Err(Error::Tls(TlsError::NoKey {
            path: key_or_password.to_owned(),
        }));
    };
    if !encrypted && !password.is_empty() {
        return Err(args_error(ArgProblem::PasswordUnused, roles));
    }
    certified(chain, key, cert, key_or_password, false)
}

/// The server configuration for the certificate arguments of `Запустить`
/// (`Сертификат`, `КлючИлиПароль`, `Пароль`): `None` for a plain ws:// server (all three
/// empty), otherwise the wss:// configuration; see [`server_identity`] for the forms. Files
/// are read on a helper thread within [`FILE_TIMEOUT`].
pub fn server_config(
    cert: &str,
    key_or_password: &str,
    password: &str,
) -> Result<Option<Arc<ServerConfig>>> {
    if cert.is_empty() {
        if key_or_password.is_empty() && password.is_empty() {
            return Ok(None);
        }
        // A server meant to be wss:// must never start as ws://.
        let k = key_or_password.to_owned();
        let second = off_thread_bounded(move |c| Ok(is_file(c, FileKind::Key, &k)))?;
        return Err(args_error(
            ArgProblem::KeyWithoutCertificate,
            [
                arg(cert, ArgRole::Empty),
                arg(
                    key_or_password,
                    if second {
                        ArgRole::KeyFile
                    } else {
                        ArgRole::Password
                    },
                ),
                arg(password, ArgRole::Password),
            ],
        ));
    }
    let (c, k, p) = (
        cert.to_owned(),
        key_or_password.to_owned(),
        password.to_owned(),
    );
    let ck = off_thread_bounded(move |cur| server_identity(cur, &c, &k, &p))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|_| Error::Tls(TlsError::Setup))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCert(ck)));
    Ok(Some(Arc::new(config)))
}

/// The server's one certificate, already checked against its key.
#[derive(Debug)]
struct SingleCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

// ---------------------------------------------------------------------------------------
// Client

fn store_of(certs: Vec<CertificateDer<'static>>, path: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for c in certs {
        store.add(c).map_err(|_| {
            Error::Tls(TlsError::BadRoot {
                path: path.to_owned(),
            })
        })?;
    }
    Ok(store)
}

fn verifier(current: &Current, t: &TlsOptions) -> Result<Arc<dyn ServerCertVerifier>> {
    if t.insecure {
        return Ok(Arc::new(NoVerification(provider())));
    }
    let extra = match &t.ca_file {
        Some(path) => load_certs(current, FileKind::CaBundle, path)?,
        None => Vec::new(),
    };
    let store = match &t.roots {
        Roots::System => {
            let v = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider())
                .map_err(|_| Error::Tls(TlsError::Setup))?;
            return Ok(Arc::new(v));
        }
        Roots::Webpki => {
            let mut store = RootCertStore::empty();
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let more = store_of(extra, t.ca_file.as_deref().unwrap_or_default())?;
            store.roots.extend(more.roots);
            store
        }
        Roots::File(path) => {
            let mut store = store_of(load_certs(current, FileKind::CaBundle, path)?, path)?;
            let more = store_of(extra, t.ca_file.as_deref().unwrap_or_default())?;
            store.roots.extend(more.roots);
            store
        }
    };
    let v = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
        .build()
        .map_err(|_| Error::Tls(TlsError::Setup))?;
    Ok(v)
}

/// The client's own certificate and key, if `tls` names them.
fn identity(current: &Current, t: &TlsOptions) -> Result<Option<Arc<CertifiedKey>>> {
    if let Some(pfx) = &t.pfx_file {
        let data = read_capped(current, FileKind::Pfx, pfx)?;
        let (chain, key) = pfx_of(pfx, &data, &t.password)?;
        return certified(chain, key, pfx, pfx, true).map(Some);
    }
    let Some(cert) = &t.cert_file else {
        return Ok(None);
    };
    let data = read_capped(current, FileKind::Certificate, cert)?;
    let chain = certificates_from_pem(cert, &data)?;
    let key_file = t.key_file.as_deref().unwrap_or(cert);
    let key = if key_file == cert {
        private_key_from_pem(cert, &data, &t.password)?
    } else {
        let data = read_capped(current, FileKind::Key, key_file)?;
        private_key_from_pem(key_file, &data, &t.password)?
    }
    .map(|(k, _)| k);
    let Some(key) = key else {
        return Err(Error::Tls(TlsError::NoKey {
            path: key_file.to_owned(),
        }));
    };
    certified(chain, key, cert, key_file, true).map(Some)
}

/// The client configuration for `tls`: the roots it names (by default the platform's
/// trusted roots, verified by the OS facilities where there are some, by webpki over the
/// system store on Linux) plus `ca_file`, or no verification with `insecure`; the client
/// certificate if given. TLS 1.2 and 1.3; SNI and hostname verification on. Built per
/// connection (cheap) around a verifier that is cached for the default roots (loading the
/// system store takes milliseconds). Files are read on a helper thread within
/// [`FILE_TIMEOUT`]; the calling task waits, its runtime worker does not.
pub async fn client_config(t: &TlsOptions) -> Result<(Arc<ClientConfig>, Arc<ClientAuth>)> {
    let t = t.clone();
    bounded_async(move |current| {
        static DEFAULT: OnceLock<Arc<dyn ServerCertVerifier>> = OnceLock::new();
        let default_roots = t.roots == Roots::System && t.ca_file.is_none() && !t.insecure;
        let verifier = match DEFAULT.get() {
            Some(v) if default_roots => v.clone(),
            _ if default_roots => {
                let v = verifier(current, &t)?;
                DEFAULT.get_or_init(|| v).clone()
            }
            _ => verifier(current, &t)?,
        };
        let auth = Arc::new(ClientAuth {
            identity: identity(current, &t)?,
            asked: AtomicBool::new(false),
        });
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|_| Error::Tls(TlsError::Setup))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(auth.clone());
        Ok((Arc::new(config), auth))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Handshake failures

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// Whether `e` means the server wants (another) client certificate: one of its alerts that
/// say so, or any failure after it asked for a certificate we did not have (under TLS 1.3
/// it checks after the handshake and may just hang up).
pub fn client_cert_refused(e: &std::io::Error, auth: Option<&ClientAuth>) -> bool {
    use rustls::AlertDescription as A;
    auth.is_some_and(ClientAuth::asked_without_certificate)
        || matches!(
            rustls_error(e),
            Some(rustls::Error::AlertReceived(
                A::CertificateRequired
                    | A::BadCertificate
                    | A::UnknownCA
                    | A::CertificateUnknown
                    | A::AccessDenied
                    | A::HandshakeFailure
            ))
        )
}

/// The certificate check that failed, from rustls's typed error (and webpki's, which
/// rustls passes on as `Other` for the cases it has no variant for).
pub fn cert_problem(e: &rustls::CertificateError) -> CertProblem {
    use rustls::CertificateError as C;
    match e {
        C::UnknownIssuer => CertProblem::UnknownIssuer,
        C::Expired | C::ExpiredContext { .. } => CertProblem::Expired,
        C::NotValidYet | C::NotValidYetContext { .. } => CertProblem::NotValidYet,
        C::NotValidForName => CertProblem::NotValidForName {
            presented: Vec::new(),
        },
        C::NotValidForNameContext { presented, .. } => CertProblem::NotValidForName {
            presented: presented.clone(),
        },
        C::Revoked => CertProblem::Revoked,
        C::UnknownRevocationStatus
        | C::ExpiredRevocationList
        | C::ExpiredRevocationListContext { .. } => CertProblem::UnknownRevocationStatus,
        C::BadSignature => CertProblem::BadSignature,
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            CertProblem::UnsupportedSignature
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => CertProblem::InvalidPurpose,
        C::BadEncoding => CertProblem::BadEncoding,
        C::UnhandledCriticalExtension => CertProblem::UnhandledCriticalExtension,
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => CertProblem::CaUsedAsEndEntity,
            Some(webpki::Error::UnknownIssuer) => CertProblem::UnknownIssuer,
            Some(webpki::Error::CertExpired { .. }) => CertProblem::Expired,
            Some(webpki::Error::CertNotValidYet { .. }) => CertProblem::NotValidYet,
            Some(webpki::Error::CertRevoked) => CertProblem::Revoked,
            Some(webpki::Error::InvalidSignatureForPublicKey) => CertProblem::BadSignature,
            #[allow(deprecated)]
            Some(
                webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_),
            ) => CertProblem::InvalidPurpose,
            _ => CertProblem::Other,
        },
        _ => CertProblem::Other,
    }
}

fn alert_kind(a: rustls::AlertDescription) -> AlertKind {
    use rustls::AlertDescription as A;
    match a {
        A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity => {
            AlertKind::NoCommonParameters
        }
        A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown
        | A::UnknownCA
        | A::CertificateRequired => AlertKind::CertificateRefused,
        A::AccessDenied => AlertKind::AccessDenied,
        A::UnrecognisedName => AlertKind::UnknownName,
        other => AlertKind::Other(u8::from(other)),
    }
}

/// What a failed client handshake means, from rustls's typed error inside `e`.
pub fn handshake_problem(e: &std::io::Error, auth: Option<&ClientAuth>) -> HandshakeProblem {
    use std::io::ErrorKind as K;
    if client_cert_refused(e, auth) {
        return HandshakeProblem::ClientCertificateRefused;
    }
    match rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(c)) => {
            HandshakeProblem::ServerCertificate(cert_problem(c))
        }
        Some(rustls::Error::NoCertificatesPresented) => {
            HandshakeProblem::ServerCertificate(CertProblem::Other)
        }
        Some(rustls::Error::AlertReceived(a)) => HandshakeProblem::Alert(alert_kind(*a)),
        Some(rustls::Error::PeerIncompatible(_)) => HandshakeProblem::Incompatible,
        Some(
            rustls::Error::PeerMisbehaved(_)
            | rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::DecryptError,
        ) => HandshakeProblem::Misbehaved,
        Some(_) => HandshakeProblem::Other,
        None => match e.kind() {
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                HandshakeProblem::Closed
            }
            K::InvalidData => HandshakeProblem::Misbehaved,
            _ => HandshakeProblem::Other,
        },
    }
}

/// The error for a failed client handshake with `host:port`.
pub fn handshake_error(
    host: &str,
    port: u16,
    e: &std::io::Error,
    auth: Option<&ClientAuth>,
) -> Error {
    Error::Tls(TlsError::Handshake {
        host: host.to_owned(),
        port,
        problem: handshake_problem(e, auth),
    })
}

/// The error for a host name that cannot be a TLS server name.
pub fn bad_server_name(host: &str) -> Error {
    Error::Tls(TlsError::BadServerName {
        host: host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_sections_are_numbered_and_a_cut_one_is_named() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                    -----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                    DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nBBBB\n";
        let e = parse_pem("x.pem", text.as_bytes())
            .err()
            .map(|e| e.text(crate::lang::Lang::En));
        assert_eq!(
            e.as_deref(),
            Some(
                "Section 2 (RSA PRIVATE KEY) of \"x.pem\": no END line (the file is truncated or damaged)"
            )
        );
        let whole = format!("{text}-----END RSA PRIVATE KEY-----\n");
        let sections = parse_pem("x.pem", whole.as_bytes()).unwrap_or_default();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[1].number, 2);
        assert_eq!(sections[1].headers.len(), 2);
        assert_eq!(sections[1].der, vec![0x04, 0x10, 0x41]);
    }

    /// Every text of the TLS and file errors: English without Cyrillic, Russian with it,
    /// neither with type names or Debug output.
    #[test]
    fn texts_are_in_one_language_and_without_internal_names() {
        use crate::lang::Lang;
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let args = || {
            [
                arg("c.pem", ArgRole::CombinedPem),
                arg("secret", ArgRole::Password),
                arg("", ArgRole::Password),
            ]
        };
        let mut errors: Vec<Error> = vec![
            Error::File(FileError::Io {
                kind: FileKind::Key,
                path: "k".into(),
                error: io(),
            }),
            Error::File(FileError::NotRegular {
                kind: FileKind::Log,
                path: "l".into(),
            }),
            Error::File(FileError::TooLarge {
                kind: FileKind::CaBundle,
                path: "c".into(),
                limit: cap(FileKind::CaBundle),
            }),
            Error::File(FileError::NoAnswer {
                kind: FileKind::Pfx,
                path: "p".into(),
                waited_ms: 5000,
            }),
            Error::File(FileError::NoThread(io())),
            Error::Tls(TlsError::NoCertificates { path: "c".into() }),
            Error::Tls(TlsError::NoKey { path: "c".into() }),
            Error::Tls(TlsError::BadRoot { path: "c".into() }),
            Error::Tls(TlsError::Setup),
            Error::Tls(TlsError::BadServerName { host: "h".into() }),
        ];
        for problem in [
            PemProblem::Unterminated,
            PemProblem::BadBase64,
            PemProblem::BadHeaders,
            PemProblem::UnsupportedCipher("RC2-CBC".into()),
            PemProblem::NeedsPassword,
            PemProblem::WrongPasswordOrDamaged,
            PemProblem::Damaged,
        ] {
            errors.push(pem_error("k.pem", 2, "RSA PRIVATE KEY", problem));
        }
        for no_key in [true, false] {
            errors.push(Error::Tls(TlsError::Pfx {
                path: "p".into(),
                no_key,
            }));
        }
        for (checked, client) in [(true, true), (true, false), (false, false)] {
            errors.push(Error::Tls(TlsError::KeyMismatch {
                cert: "c".into(),
                key: "k".into(),
                checked,
                client,
            }));
        }
        for problem in [
            ArgProblem::KeyWithoutCertificate,
            ArgProblem::NoKey,
            ArgProblem::KeyFileMissing,
            ArgProblem::KeyTwice,
            ArgProblem::PasswordTwice,
            ArgProblem::PasswordUnused,
        ] {
            errors.push(args_error(problem, args()));
        }
        let certs = [
            CertProblem::UnknownIssuer,
            CertProblem::Expired,
            CertProblem::NotValidYet,
            CertProblem::NotValidForName {
                presented: vec!["a.example".into()],
            },
            CertProblem::NotValidForName { presented: vec![] },
            CertProblem::CaUsedAsEndEntity,
            CertProblem::Revoked,
            CertProblem::UnknownRevocationStatus,
            CertProblem::BadSignature,
            CertProblem::UnsupportedSignature,
            CertProblem::InvalidPurpose,
            CertProblem::BadEncoding,
            CertProblem::UnhandledCriticalExtension,
            CertProblem::Other,
        ];
        let mut problems: Vec<HandshakeProblem> = certs
            .into_iter()
            .map(HandshakeProblem::ServerCertificate)
            .collect();
        problems.extend([
            HandshakeProblem::ClientCertificateRefused,
            HandshakeProblem::Alert(AlertKind::NoCommonParameters),
            HandshakeProblem::Alert(AlertKind::CertificateRefused),
            HandshakeProblem::Alert(AlertKind::AccessDenied),
            HandshakeProblem::Alert(AlertKind::UnknownName),
            HandshakeProblem::Alert(AlertKind::Other(90)),
            HandshakeProblem::Incompatible,
            HandshakeProblem::Misbehaved,
            HandshakeProblem::Closed,
            HandshakeProblem::Other,
        ]);
        for problem in problems {
            errors.push(Error::Tls(TlsError::Handshake {
                host: "h".into(),
                port: 1,
                problem,
            }));
        }
        let cyrillic = |t: &str| t.chars().any(|c| ('\u{400}'..='\u{4ff}').contains(&c));
        for e in &errors {
            let (ru, en) = (e.text(Lang::Ru), e.text(Lang::En));
            assert!(!cyrillic(&en), "{en}");
            assert!(cyrillic(&ru), "{ru}");
            for t in [&ru, &en] {
                for bad in ["::", "Error", "Other(", "{", "secret"] {
                    assert!(!t.contains(bad), "{bad:?} in {t}");
                }
            }
        }
    }

    #[test]
    fn legacy_headers_are_checked() {
        assert_eq!(
            legacy_decrypt("AES-128-CBC,0011", b"p", &[0; 16]),
            Err(PemProblem::BadHeaders)
        );
        assert_eq!(
            legacy_decrypt("BF-CBC,0011223344556677", b"p", &[0; 16]),
            Err(PemProblem::UnsupportedCipher("BF-CBC".into()))
        );
        assert_eq!(hex("0aFF"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex("0g"), None);
        // EVP_BytesToKey(MD5) gives 16 bytes per round; a 24-byte key takes two.
        assert_eq!(bytes_to_key(b"pw", b"saltsalt", 24).len(), 24);
        assert_eq!(
            bytes_to_key(b"pw", b"saltsalt", 24)[..16],
            bytes_to_key(b"pw", b"saltsalt", 16)[..]
        );
    }
}
