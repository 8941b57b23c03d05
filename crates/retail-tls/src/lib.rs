//! TLS to the platform's dependencies, and the rule that plaintext stays on the machine.
//!
//! PostgreSQL (the warehouse and the metadata store) and Redis connections go through
//! [`TlsConfig`]: a PostgreSQL URL with `sslmode=require` and a `rediss://` URL are encrypted,
//! with the server's certificate checked against `tls.ca_file` (or the system's authorities)
//! and the host name it was reached by. A connection that would send data unencrypted to
//! another machine is refused unless `tls.allow_plaintext` says so; loopback and Unix sockets
//! never leave the machine and need nothing.

mod server;

use std::net::IpAddr;
use std::sync::{Arc, Once};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};
use tokio_postgres::config::{Host, SslMode};

pub use server::{ClientAuth, ServerTls};
pub use tokio_postgres_rustls::MakeRustlsConnect;

/// TLS settings (`[tls]`, `RETAIL__TLS__...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of the certificate authorities that sign the PostgreSQL and Redis servers'
    /// certificates; empty: the system's authorities.
    pub ca_file: String,
    /// Allow unencrypted connections to PostgreSQL and Redis on other machines. Off: such a
    /// URL is refused at start-up, naming the setting.
    pub allow_plaintext: bool,
    /// The API's certificate chain (PEM, leaf first): with `key_file`, `retail serve` speaks
    /// TLS 1.3 only. Both files are read again when they change (every `reload_seconds`), so a
    /// renewed certificate needs no restart. Empty: plain HTTP.
    pub cert_file: String,
    /// The API certificate's private key (PEM).
    pub key_file: String,
    /// Client certificates: `none`, `optional` (checked when presented) or `required`.
    pub client_auth: ClientAuth,
    /// The authorities that sign client certificates (PEM), for `client_auth`.
    pub client_ca_file: String,
    /// How often the certificate and key files are checked for a change, in seconds (0: never).
    pub reload_seconds: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca_file: String::new(),
            allow_plaintext: false,
            cert_file: String::new(),
            key_file: String::new(),
            client_auth: ClientAuth::None,
            client_ca_file: String::new(),
            reload_seconds: 10,
        }
    }
}

/// Why a connection is refused, or TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API's certificate or key file cannot be used.
    #[error("tls: {path}: {reason}")]
    ServerCert {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS settings do not fit together.
    #[error("{0}")]
    Setting(String),
    /// Plaintext to another machine without `tls.allow_plaintext`.
    #[error(
        "{setting} connects to {host} without TLS: use sslmode=require (PostgreSQL) or a \
         rediss:// URL (Redis), or set tls.allow_plaintext = true to send data unencrypted"
    )]
    Plaintext {
        /// The setting that holds the URL.
        setting: &'static str,
        /// The host it names.
        host: String,
    },
    /// The authorities file cannot be used.
    #[error("tls.ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Makes ring the process's rustls provider (once): several are compiled in, and libraries
/// that build their own client configuration (Redis) need a default.
pub fn install_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another part of the process may have installed one first: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Whether `host` is this machine.
fn is_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// A client configuration (ring, safe defaults) trusting `roots`.
fn with_roots(roots: RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl TlsConfig {
    /// The authorities file's contents, `None` when the system's authorities are used.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or holds no certificate.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        if self.ca_file.trim().is_empty() {
            return Ok(None);
        }
        let failed = |reason: String| Error::CaFile {
            path: self.ca_file.clone(),
            reason,
        };
        let pem = std::fs::read(&self.ca_file).map_err(|error| failed(error.to_string()))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| failed(format!("not PEM certificates ({error})")))?;
        if certificates.is_empty() {
            return Err(failed("holds no certificate".to_owned()));
        }
        Ok(Some(pem))
    }

    /// A rustls client configuration trusting `ca_file` (or the system's authorities).
    ///
    /// # Errors
    ///
    /// When the authorities file cannot be used or holds a certificate rustls refuses.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, Error> {
        install_provider();
        let mut roots = RootCertStore::empty();
        match self.ca_pem()? {
            Some(pem) => {
                for certificate in CertificateDer::pem_slice_iter(&pem) {
                    let certificate = certificate.map_err(|error| Error::CaFile {
                        path: self.ca_file.clone(),
                        reason: error.to_string(),
                    })?;
                    roots.add(certificate).map_err(|error| Error::CaFile {
                        path: self.ca_file.clone(),
                        reason: error.to_string(),
                    })?;
                }
            }
            None => {
                // Certificates the system store holds but rustls cannot parse are skipped.
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        Ok(with_roots(roots))
    }

    /// The TLS connector for a PostgreSQL connection made from `config` (read from `setting`):
    /// `sslmode=require` encrypts and checks the server's certificate; any other mode
    /// (`prefer`, the default, or `disable`) connects in plaintext, which `config` is set to,
    /// and every host must then be this machine unless plaintext is allowed. (libpq's
    /// `prefer` tries TLS without checking the certificate; an unchecked certificate is not
    /// worth the pretence.)
    ///
    /// # Errors
    ///
    /// [`Error::Plaintext`] for plaintext to another machine; when the authorities cannot be
    /// used.
    pub fn postgres(
        &self,
        setting: &'static str,
        config: &mut tokio_postgres::Config,
    ) -> Result<MakeRustlsConnect, Error> {
        if config.get_ssl_mode() == SslMode::Require {
            return Ok(MakeRustlsConnect::new(self.client_config()?));
        }
        config.ssl_mode(SslMode::Disable);
        if !self.allow_plaintext {
            for host in config.get_hosts() {
                if let Host::Tcp(name) = host
                    && !is_local(name)
                {
                    return Err(Error::Plaintext {
                        setting,
                        host: name.clone(),
                    });
                }
            }
            for address in config.get_hostaddrs() {
                if !address.is_loopback() {
                    return Err(Error::Plaintext {
                        setting,
                        host: address.to_string(),
                    });
                }
            }
        }
        // Never used (the connection is plaintext): no need to read the system's authorities.
        Ok(MakeRustlsConnect::new(with_roots(RootCertStore::empty())))
    }

    /// Checks a Redis URL (read from `setting`): `rediss://` is encrypted; `redis://` must
    /// name this machine unless plaintext is allowed. Returns whether the URL asks for TLS.
    ///
    /// # Errors
    ///
    /// [`Error::Plaintext`] for plaintext to another machine.
    pub fn redis(&self, setting: &'static str, url: &str) -> Result<bool, Error> {
        install_provider();
        let Ok(parsed) = url::Url::parse(url) else {
            // Not a URL: the Redis client names that problem itself.
            return Ok(false);
        };
        match parsed.scheme() {
            "rediss" | "valkeys" => Ok(true),
            "unix" | "redis+unix" => Ok(false),
            _ => {
                let host = parsed.host_str().unwrap_or_default();
                if self.allow_plaintext || is_local(host) {
                    Ok(false)
                } else {
                    Err(Error::Plaintext {
                        setting,
                        host: host.to_owned(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres(url: &str, tls: &TlsConfig) -> Result<(), Error> {
        tls.postgres("warehouse.postgres_url", &mut url.parse().unwrap())
            .map(|_| ())
    }

    #[test]
    fn plaintext_may_reach_this_machine_only_unless_allowed() {
        let strict = TlsConfig::default();
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@db.example.com/db?sslmode=require",
            "host=/var/run/postgresql user=u",
        ] {
            postgres(url, &strict).unwrap_or_else(|error| panic!("{url}: {error}"));
        }
        for url in [
            "postgres://u@db.example.com/db",
            "postgres://u@10.0.0.5/db?sslmode=prefer",
            "postgres://u@10.0.0.5/db?sslmode=disable",
        ] {
            let error = postgres(url, &strict).unwrap_err().to_string();
            assert!(
                error.contains("warehouse.postgres_url") && error.contains("sslmode=require"),
                "{error}"
            );
        }
        let allowed = TlsConfig {
            allow_plaintext: true,
            ..TlsConfig::default()
        };
        postgres("postgres://u@db.example.com/db", &allowed).unwrap();

        assert!(
            !strict
                .redis("api.redis_url", "redis://127.0.0.1:6379/")
                .unwrap()
        );
        assert!(
            strict
                .redis("api.redis_url", "rediss://cache.example.com/")
                .unwrap()
        );
        let error = strict
            .redis("api.redis_url", "redis://:secret@cache.example.com:6379/")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret"), "{error}");
        assert!(error.contains("cache.example.com"), "{error}");
        assert!(
            !allowed
                .redis("api.redis_url", "redis://cache.example.com/")
                .unwrap()
        );
    }

    #[test]
    fn an_authorities_file_must_hold_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            ca_file: dir.path().join("none.pem").display().to_string(),
            ..TlsConfig::default()
        };
        assert!(
            missing
                .client_config()
                .unwrap_err()
                .to_string()
                .contains("none.pem")
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let empty = TlsConfig {
            ca_file: empty.display().to_string(),
            ..TlsConfig::default()
        };
        assert!(
            empty
                .client_config()
                .unwrap_err()
                .to_string()
                .contains("no certificate")
        );
        TlsConfig::default()
            .client_config()
            .expect("the system's authorities");
    }
}
