//! TLS configuration (rustls with the ring provider, passed explicitly).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::error::{Error, Result};
use crate::net::options::{Roots, TlsOptions};

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Certificates from a PEM file, for the trusted roots.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            Error::net(
                format!("Не удалось прочитать файл сертификатов «{path}»: {e}"),
                format!("Cannot read the certificate file \"{path}\": {e}"),
            )
        })?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::net(
                format!("Файл «{path}» не является корректным PEM с сертификатами: {e}"),
                format!("\"{path}\" is not a valid PEM certificate file: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(Error::net(
            format!("В файле «{path}» нет сертификатов (BEGIN CERTIFICATE)"),
            format!("No certificates (BEGIN CERTIFICATE) in \"{path}\""),
        ));
    }
    Ok(certs)
}

fn tls_error(e: rustls::Error) -> Error {
    Error::net(
        format!("Ошибка настройки TLS: {e}"),
        format!("TLS setup error: {e}"),
    )
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

fn store_of(certs: Vec<CertificateDer<'static>>, path: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for c in certs {
        store.add(c).map_err(|e| {
            Error::net(
                format!("Сертификат из «{path}» не подходит как корневой: {e}"),
                format!("A certificate of \"{path}\" cannot be a root: {e}"),
            )
        })?;
    }
    Ok(store)
}

fn verifier(t: &TlsOptions) -> Result<Arc<dyn ServerCertVerifier>> {
    if t.insecure {
        return Ok(Arc::new(NoVerification(provider())));
    }
    let extra = match &t.ca_file {
        Some(path) => load_certs(path)?,
        None => Vec::new(),
    };
    let store = match &t.roots {
        Roots::System => {
            let v = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider())
                .map_err(tls_error)?;
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
            let mut store = store_of(load_certs(path)?, path)?;
            let more = store_of(extra, t.ca_file.as_deref().unwrap_or_default())?;
            store.roots.extend(more.roots);
            store
        }
    };
    let v = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
        .build()
        .map_err(|e| {
            Error::net(
                format!("Ошибка настройки проверки сертификатов: {e}"),
                format!("Certificate verification setup error: {e}"),
            )
        })?;
    Ok(v)
}

/// The client's own certificate and key, if `tls` names them.
fn client_identity(
    t: &TlsOptions,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    if let Some(pfx) = &t.pfx_file {
        return load_pfx(pfx, &t.password).map(Some);
    }
    let Some(cert) = &t.cert_file else {
        return Ok(None);
    };
    let key_file = t.key_file.as_deref().unwrap_or(cert);
    Ok(Some((load_certs(cert)?, load_key(key_file, &t.password)?)))
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

fn identity(t: &TlsOptions) -> Result<Option<Arc<CertifiedKey>>> {
    let Some((chain, key)) = client_identity(t)? else {
        return Ok(None);
    };
    let mismatch = |e: rustls::Error| {
        Error::net(
            format!(
                "Клиентский сертификат и ключ не подходят друг другу или не поддерживаются: {e}"
            ),
            format!("The client certificate and key do not match or are not supported: {e}"),
        )
    };
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(mismatch)?;
    let ck = CertifiedKey::new(chain, key);
    ck.keys_match().map_err(mismatch)?;
    Ok(Some(Arc::new(ck)))
}

/// The client configuration for `tls`: the roots it names (by default the platform's
/// trusted roots, verified by the OS facilities where there are some, by webpki over the
/// system store on Linux) plus `ca_file`, or no verification with `insecure`; the client
/// certificate if given. TLS 1.2 and 1.3; SNI and hostname verification on. Built per
/// connection (cheap) around a verifier that is cached for the default roots (loading the
/// system store takes milliseconds).
pub fn client_config(t: &TlsOptions) -> Result<(Arc<ClientConfig>, Arc<ClientAuth>)> {
    static DEFAULT: OnceLock<Arc<dyn ServerCertVerifier>> = OnceLock::new();
    let default_roots = t.roots == Roots::System && t.ca_file.is_none() && !t.insecure;
    let verifier = match DEFAULT.get() {
        Some(v) if default_roots => v.clone(),
        _ if default_roots => {
            let v = verifier(t)?;
            DEFAULT.get_or_init(|| v).clone()
        }
        _ => verifier(t)?,
    };
    let auth = Arc::new(ClientAuth {
        identity: identity(t)?,
        asked: AtomicBool::new(false),
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(auth.clone());
    Ok((Arc::new(config), auth))
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

fn read_file(path: &str, what_ru: &str, what_en: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::net(
            format!("Не удалось прочитать {what_ru} «{path}»: {e}"),
            format!("Cannot read the {what_en} \"{path}\": {e}"),
        )
    })
}

/// The PEM block `label` of `text`, if any.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

/// The private key of a PEM file: PKCS#8 (plain or encrypted with `password`), PKCS#1 or SEC1.
pub fn load_key(path: &str, password: &str) -> Result<PrivateKeyDer<'static>> {
    let bytes = read_file(path, "файл ключа", "key file")?;
    let text = String::from_utf8_lossy(&bytes);
    if let Some(block) = pem_block(&text, "ENCRYPTED PRIVATE KEY") {
        if password.is_empty() {
            return Err(Error::net(
                format!("Закрытый ключ в «{path}» зашифрован: укажите пароль"),
                format!("The private key in \"{path}\" is encrypted: give its password"),
            ));
        }
        let bad = |why: String| {
            Error::net(
                format!(
                    "Не удалось расшифровать ключ «{path}»: неверный пароль или повреждённый ключ ({why})"
                ),
                format!("Cannot decrypt the key \"{path}\": wrong password or damaged key ({why})"),
            )
        };
        let (_, der) =
            pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| bad(e.to_string()))?;
        let doc = info.decrypt(password).map_err(|e| bad(e.to_string()))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            doc.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(Error::net(
            format!(
                "Ключ «{path}» зашифрован в устаревшем формате OpenSSL; переведите его в PKCS#8: openssl pkcs8 -topk8 -in old.pem -out key.pem"
            ),
            format!(
                "The key \"{path}\" uses the legacy OpenSSL encryption; convert it to PKCS#8: openssl pkcs8 -topk8 -in old.pem -out key.pem"
            ),
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        Error::net(
            format!("В файле «{path}» нет закрытого ключа (BEGIN PRIVATE KEY)"),
            format!("No private key (BEGIN PRIVATE KEY) in \"{path}\""),
        )
    })
}

/// The certificate chain and key of a PKCS#12 (`.pfx` / `.p12`) file.
pub fn load_pfx(
    path: &str,
    password: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let data = read_file(path, "файл PFX", "PFX file")?;
    let store = p12_keystore::KeyStore::from_pkcs12(
        &data,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| {
        Error::net(
            format!("Не удалось открыть «{path}»: неверный пароль или повреждённый файл PFX ({e})"),
            format!("Cannot open \"{path}\": wrong password or damaged PFX file ({e})"),
        )
    })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(Error::net(
            format!("В файле «{path}» нет закрытого ключа с сертификатом"),
            format!("No private key with a certificate in \"{path}\""),
        ));
    };
    let certs = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}

/// The server configuration from the documented forms of `Запустить`:
/// `(cert.pem, key.pem, password)`, where the key may be encrypted PKCS#8, or
/// `(combined.pem, password)`, a PEM with the chain and the key, or `(cert.pfx, password)`.
pub fn server_config(
    cert: &str,
    key_or_password: &str,
    password: &str,
) -> Result<Arc<ServerConfig>> {
    let lower = cert.to_ascii_lowercase();
    let (chain, key) = if lower.ends_with(".pfx") || lower.ends_with(".p12") {
        let password = if key_or_password.is_empty() {
            password
        } else {
            key_or_password
        };
        load_pfx(cert, password)?
    } else {
        let separate_key =
            !key_or_password.is_empty() && std::path::Path::new(key_or_password).is_file();
        let (key_file, password) = if separate_key {
            (key_or_password, password)
        } else {
            (cert, key_or_password)
        };
        (load_certs(cert)?, load_key(key_file, password)?)
    };
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Error::net(
                format!("Сертификат и ключ не подходят друг другу или не поддерживаются: {e}"),
                format!("The certificate and key do not match or are not supported: {e}"),
            )
        })?;
    Ok(Arc::new(config))
}
