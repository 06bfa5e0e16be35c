//! TLS configuration (rustls with the ring provider, passed explicitly).

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Error, Result};

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

fn build(extra: Vec<CertificateDer<'static>>) -> Result<Arc<ClientConfig>> {
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider())
        .map_err(tls_error)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The client configuration: the platform's trusted roots (verified by the OS facilities
/// where there are some, by webpki over the system store on Linux), plus `ca_file` if
/// given. TLS 1.2 and 1.3; SNI and hostname verification on.
pub fn client_config(ca_file: Option<&str>) -> Result<Arc<ClientConfig>> {
    match ca_file {
        Some(path) => build(load_certs(path)?),
        None => {
            // Loading the system store takes milliseconds: build the default once.
            static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
            if let Some(c) = DEFAULT.get() {
                return Ok(c.clone());
            }
            let c = build(Vec::new())?;
            Ok(DEFAULT.get_or_init(|| c).clone())
        }
    }
}
