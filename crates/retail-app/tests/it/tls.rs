//! TLS on the API: `retail serve` over a real socket with certificates made by `openssl`:
//! TLS 1.3 only, HTTP/2 or HTTP/1.1 by ALPN, client certificates required, a renewed
//! certificate served without a restart, and bad certificate settings named at start-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_app::{App, Role};
use retail_services::ApiConfig;
use retail_tls::ClientAuth;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::api::support::test_config;

/// Runs `openssl` with `args` in `dir`, failing the test with its error output.
fn openssl(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (Debian: apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority `name` (`name.pem`, `name.key`).
fn authority(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A certificate `name` signed by authority `ca`, for `usage` (`serverAuth`, `clientAuth`),
/// naming `127.0.0.1` and `localhost`.
fn issue(dir: &Path, ca: &str, name: &str, usage: &str) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            &format!("extendedKeyUsage={usage}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn certificates(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A client trusting `ca`, offering `alpn`, with `identity` (a certificate's name) when given,
/// and only `versions`.
fn client(
    dir: &Path,
    identity: Option<&str>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(&dir.join("ca.pem")) {
        roots.add(certificate).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(name) => builder
            .with_client_auth_cert(
                certificates(&dir.join(format!("{name}.pem"))),
                PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// What one HTTPS exchange saw: the protocol, the ALPN, the server's leaf certificate and the
/// answer's first line, or the error.
struct Exchange {
    version: Option<rustls::ProtocolVersion>,
    alpn: Option<Vec<u8>>,
    leaf: Option<CertificateDer<'static>>,
    status_line: Result<String, String>,
}

/// Sends `GET /health` over HTTP/1.1 through `connector` to `address`.
async fn exchange(
    connector: &tokio_rustls::TlsConnector,
    address: std::net::SocketAddr,
) -> Exchange {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = match connector.connect(name, tcp).await {
        Ok(stream) => stream,
        Err(error) => {
            return Exchange {
                version: None,
                alpn: None,
                leaf: None,
                status_line: Err(error.to_string()),
            };
        }
    };
    let (_, connection) = stream.get_ref();
    let version = connection.protocol_version();
    let alpn = connection.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first().cloned());
    let status_line = async {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(
            String::from_utf8_lossy(&answer)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        )
    }
    .await
    .map_err(|error| error.to_string());
    Exchange {
        version,
        alpn,
        leaf,
        status_line,
    }
}

#[tokio::test]
async fn the_api_speaks_tls_1_3_with_client_certificates_and_takes_a_renewed_certificate_live() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    authority(&certs, "ca");
    issue(&certs, "ca", "server", "serverAuth");
    authority(&certs, "clients");
    issue(&certs, "clients", "machine", "clientAuth");
    // A client certificate from an authority the server does not trust.
    authority(&certs, "stranger-ca");
    issue(&certs, "stranger-ca", "stranger", "clientAuth");

    let path = |name: &str| -> String { certs.join(name).display().to_string() };
    let mut config = test_config(dir.path(), ApiConfig::default());
    config.tls.cert_file = path("server.pem");
    config.tls.key_file = path("server.key");
    config.tls.client_auth = ClientAuth::Required;
    config.tls.client_ca_file = path("clients.pem");
    config.tls.reload_seconds = 1;
    let app = App::build(config, Role::Server).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let checks = async {
        let tls13 = [&rustls::version::TLS13];
        let machine = client(&certs, Some("machine"), &tls13, &[b"h2", b"http/1.1"]);
        let first = exchange(&machine, address).await;
        assert_eq!(first.version, Some(rustls::ProtocolVersion::TLSv1_3));
        assert_eq!(
            first.alpn.as_deref(),
            Some(&b"h2"[..]),
            "h2 first when offered"
        );
        let http1 = client(&certs, Some("machine"), &tls13, &[b"http/1.1"]);
        let answer = exchange(&http1, address).await;
        assert_eq!(answer.status_line.as_deref(), Ok("HTTP/1.1 200 OK"));
        // TLS 1.2 is refused; so are clients without a certificate or with a stranger's.
        let old = client(
            &certs,
            Some("machine"),
            &[&rustls::version::TLS12],
            &[b"http/1.1"],
        );
        assert!(exchange(&old, address).await.status_line.is_err());
        for identity in [None, Some("stranger")] {
            let refused = client(&certs, identity, &tls13, &[b"http/1.1"]);
            let answer = exchange(&refused, address).await;
            assert!(
                !matches!(answer.status_line.as_deref(), Ok(line) if !line.is_empty()),
                "{identity:?} was answered: {:?}",
                answer.status_line
            );
        }
        // A renewed certificate is served to new connections within the reload time.
        let before = first.leaf.expect("the server's certificate");
        issue(&certs, "ca", "server", "serverAuth");
        let started = Instant::now();
        loop {
            // A client of its own each time: a resumed session would not show a certificate.
            let fresh = client(&certs, Some("machine"), &tls13, &[b"http/1.1"]);
            let now = exchange(&fresh, address).await;
            if now.leaf.as_ref() != Some(&before) {
                assert_eq!(now.status_line.as_deref(), Ok("HTTP/1.1 200 OK"));
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the renewed certificate was not served"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A broken renewal keeps the certificate in use.
        std::fs::write(certs.join("server.pem"), "not a certificate").unwrap();
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let fresh = client(&certs, Some("machine"), &tls13, &[b"http/1.1"]);
        let answer = exchange(&fresh, address).await;
        assert_eq!(answer.status_line.as_deref(), Ok("HTTP/1.1 200 OK"));
        stop.send(()).unwrap();
    };
    let (served, ()) = tokio::join!(
        app.serve_until(listener, async {
            let _ = stopped.await;
        }),
        checks
    );
    served.unwrap();
}

#[tokio::test]
async fn bad_tls_settings_are_named_before_anything_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let certs: PathBuf = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    authority(&certs, "ca");
    issue(&certs, "ca", "server", "serverAuth");
    issue(&certs, "ca", "other", "serverAuth");
    let path = |name: &str| -> String { certs.join(name).display().to_string() };
    let cases: [(&str, &str, ClientAuth, &str, &str); 5] = [
        (
            "server.pem",
            "",
            ClientAuth::None,
            "",
            "set both tls.cert_file and tls.key_file",
        ),
        (
            "server.pem",
            "other.key",
            ClientAuth::None,
            "",
            "is not the key of",
        ),
        (
            "missing.pem",
            "server.key",
            ClientAuth::None,
            "",
            "missing.pem",
        ),
        (
            "server.pem",
            "server.key",
            ClientAuth::Required,
            "",
            "tls.client_ca_file",
        ),
        (
            "",
            "",
            ClientAuth::Optional,
            "",
            "tls.client_auth needs TLS on the API",
        ),
    ];
    for (cert, key, auth, client_ca, says) in cases {
        let mut config = test_config(dir.path(), ApiConfig::default());
        config.tls.cert_file = if cert.is_empty() {
            String::new()
        } else {
            path(cert)
        };
        config.tls.key_file = if key.is_empty() {
            String::new()
        } else {
            path(key)
        };
        config.tls.client_auth = auth;
        config.tls.client_ca_file = client_ca.to_owned();
        let app = App::build(config, Role::Server).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = app.serve_until(listener, async {}).await.expect_err(says);
        let message = format!("{error:#}");
        assert!(message.contains(says), "{says}: {message}");
    }
}
