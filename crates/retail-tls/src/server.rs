//! TLS on the API itself: TLS 1.3 only, the certificate and key read from files and reloaded
//! when they change (no restart for a renewed certificate), and client certificates for machine
//! clients, optional or required, checked against their own authorities.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};

use crate::{Error, TlsConfig};

/// Whether the API asks clients for a certificate (`tls.client_auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No client certificates.
    #[default]
    None,
    /// A client may present one; it is checked against `tls.client_ca_file` when it does.
    Optional,
    /// Every client must present one signed by `tls.client_ca_file`.
    Required,
}

/// The modification times of the certificate and key files when they were last read.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

/// The API's certificate, swapped in place when its files change.
#[derive(Debug)]
struct ReloadingCert {
    cert_file: String,
    key_file: String,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Stamp>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

fn modified(path: &str) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ReloadingCert {
    fn stamp(&self) -> Stamp {
        (modified(&self.cert_file), modified(&self.key_file))
    }
}

/// Reads a certificate chain and its key, checking they belong together.
fn load(cert_file: &str, key_file: &str) -> Result<Arc<CertifiedKey>, Error> {
    let failed = |path: &str, reason: String| Error::ServerCert {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|error| failed(cert_file, format!("not PEM certificates ({error})")))?;
    if chain.is_empty() {
        return Err(failed(cert_file, "holds no certificate".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|error| failed(key_file, format!("not a PEM private key ({error})")))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|error| failed(key_file, format!("is not the key of {cert_file} ({error})")))?;
    Ok(Arc::new(certified))
}

/// The API's TLS: an acceptor configuration whose certificate follows its files.
#[derive(Debug, Clone)]
pub struct ServerTls {
    certificate: Arc<ReloadingCert>,
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// The API's TLS of `tls`, `None` when `tls.cert_file` is empty (plain HTTP).
    ///
    /// # Errors
    ///
    /// When only one of the certificate and key files is set, either cannot be read or
    /// parsed, the key is not the certificate's, client certificates are asked for without
    /// `tls.client_ca_file`, or that file cannot be used.
    pub fn from_config(tls: &TlsConfig) -> Result<Option<Self>, Error> {
        crate::install_provider();
        let (cert_file, key_file) = (tls.cert_file.trim(), tls.key_file.trim());
        if cert_file.is_empty() && key_file.is_empty() {
            if tls.client_auth != ClientAuth::None {
                return Err(Error::Setting(
                    "tls.client_auth needs TLS on the API: set tls.cert_file and tls.key_file"
                        .to_owned(),
                ));
            }
            return Ok(None);
        }
        if cert_file.is_empty() || key_file.is_empty() {
            return Err(Error::Setting(
                "set both tls.cert_file and tls.key_file (or neither, for plain HTTP)".to_owned(),
            ));
        }
        let stamp = (modified(cert_file), modified(key_file));
        let certificate = Arc::new(ReloadingCert {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(load(cert_file, key_file)?),
            stamp: Mutex::new(stamp),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| Error::Setting(format!("TLS 1.3: {error}")))?;
        let builder = match tls.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let roots = client_roots(tls)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if auth == ClientAuth::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(|error| Error::CaFile {
                    path: tls.client_ca_file.clone(),
                    reason: error.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config =
            builder.with_cert_resolver(Arc::clone(&certificate) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Self {
            certificate,
            config: Arc::new(config),
        }))
    }

    /// The rustls configuration to accept connections with.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// Reads the certificate and key again when either file changed since they were last
    /// read; connections accepted afterwards get the new certificate. Returns whether it
    /// changed.
    ///
    /// # Errors
    ///
    /// When the changed files cannot be used (the certificate in use stays; the next call tries
    /// again).
    pub fn reload_if_changed(&self) -> Result<bool, Error> {
        let stamp = self.certificate.stamp();
        let mut seen = self
            .certificate
            .stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *seen == stamp {
            return Ok(false);
        }
        let fresh = load(&self.certificate.cert_file, &self.certificate.key_file)?;
        *self
            .certificate
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        *seen = stamp;
        Ok(true)
    }
}

/// The authorities of client certificates.
fn client_roots(tls: &TlsConfig) -> Result<Arc<RootCertStore>, Error> {
    let path = tls.client_ca_file.trim();
    let failed = |reason: String| Error::CaFile {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(Error::Setting(
            "tls.client_auth needs tls.client_ca_file: the authorities that sign client \
             certificates"
                .to_owned(),
        ));
    }
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|error| failed(format!("not PEM certificates ({error})")))?;
    if certificates.is_empty() {
        return Err(failed("holds no certificate".to_owned()));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| failed(error.to_string()))?;
    }
    Ok(Arc::new(roots))
}
