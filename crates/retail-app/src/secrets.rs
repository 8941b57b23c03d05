//! Secrets in the configuration: a secret setting may say where its value lives instead of
//! holding it, and the value is fetched once, when the configuration is loaded.
//!
//! | value | the secret is |
//! |---|---|
//! | `file:/run/secrets/jwt` | the file's content without its final line break (Kubernetes and Docker mount secrets as files) |
//! | `env:NAME` | the variable `NAME` |
//! | `aws-sm:ID` | AWS Secrets Manager's `SecretString` of the secret `ID` (a name or an ARN) |
//! | `aws-sm:ID#key` | the text under `key` in that `SecretString`, read as a JSON object |
//! | `vault:MOUNT/PATH#key` | the text under `key` of HashiCorp Vault's KV version 2 secret `PATH` in the engine mounted at `MOUNT` |
//!
//! Anything else is the value itself. Secret settings: `api.jwt_secret`, `api.redis_url`,
//! `metadata.url`, `warehouse.postgres_url`, `search.typesense_api_key`, `privacy.key`,
//! `lake.encryption.master_key` and its `previous_master_keys`, every
//! `lake.storage_options` value, every `alerts.receivers[].url` and `streams[].url`.
//! Secrets Manager is called with Signature Version 4 and the standard AWS variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), in `secrets.aws_region`
//! (else `AWS_REGION`, `AWS_DEFAULT_REGION`, `us-east-1`) at `secrets.aws_endpoint` (else
//! AWS's own). Vault is read at `secrets.vault_addr` (else `VAULT_ADDR`) with the token in
//! `VAULT_TOKEN` (and `VAULT_NAMESPACE` when set), following Vault's documented HTTP API
//! (`GET /v1/MOUNT/data/PATH`); it was never run against a real Vault, which cannot be
//! installed here.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::Config;

/// Where secrets are fetched from (`[secrets]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// The AWS region of Secrets Manager; empty: `AWS_REGION`, `AWS_DEFAULT_REGION` or
    /// `us-east-1`.
    pub aws_region: String,
    /// Secrets Manager's endpoint; empty: `https://secretsmanager.<region>.amazonaws.com`
    /// (set it for a VPC endpoint, LocalStack or moto).
    pub aws_endpoint: String,
    /// HashiCorp Vault's address for `vault:` secrets; empty: `VAULT_ADDR`.
    pub vault_addr: String,
}

/// The reference kinds a secret setting may hold.
const SCHEMES: [&str; 4] = ["file:", "env:", "aws-sm:", "vault:"];

/// Whether `value` names where a secret lives rather than holding it.
pub fn is_reference(value: &str) -> bool {
    SCHEMES.iter().any(|scheme| value.starts_with(scheme))
}

/// Every secret setting of `config`, by name, for reading and replacing.
fn secret_settings(config: &mut Config) -> Vec<(String, &mut String)> {
    let mut settings: Vec<(String, &mut String)> = vec![
        ("api.jwt_secret".to_owned(), &mut config.api.jwt_secret),
        ("api.redis_url".to_owned(), &mut config.api.redis_url),
        ("metadata.url".to_owned(), &mut config.metadata.url),
        (
            "warehouse.postgres_url".to_owned(),
            &mut config.warehouse.postgres_url,
        ),
        (
            "search.typesense_api_key".to_owned(),
            &mut config.search.typesense_api_key,
        ),
        ("privacy.key".to_owned(), &mut config.privacy.key),
        (
            "openlineage.api_key".to_owned(),
            &mut config.openlineage.api_key,
        ),
    ];
    settings.push((
        "lake.encryption.master_key".to_owned(),
        &mut config.lake.encryption.master_key,
    ));
    for (index, key) in config
        .lake
        .encryption
        .previous_master_keys
        .iter_mut()
        .enumerate()
    {
        settings.push((
            format!("lake.encryption.previous_master_keys[{index}]"),
            key,
        ));
    }
    for (key, value) in &mut config.lake.storage_options {
        settings.push((format!("lake.storage_options.{key}"), value));
    }
    for (index, receiver) in config.alerts.receivers.iter_mut().enumerate() {
        settings.push((format!("alerts.receivers[{index}].url"), &mut receiver.url));
    }
    for (index, stream) in config.streams.iter_mut().enumerate() {
        settings.push((format!("streams[{index}].url"), &mut stream.url));
    }
    settings
}

impl Config {
    /// Whether a secret setting names where its secret lives.
    pub fn has_secret_references(&self) -> bool {
        secret_settings(&mut self.clone())
            .iter()
            .any(|(_, value)| is_reference(value))
    }

    /// Replaces every secret setting that names where its secret lives with the secret
    /// (see the module's documentation), then validates again. Call it once, after
    /// [`Config::load`]: a secret whose own text looks like a reference would be read twice.
    ///
    /// # Errors
    ///
    /// When a file or variable is missing or empty, Secrets Manager cannot be reached,
    /// refuses, or has no such secret or key; each names the setting and the reference (never
    /// a secret).
    pub async fn resolve_secrets(mut self) -> anyhow::Result<Self> {
        let secrets = self.secrets.clone();
        let tls = self.tls.clone();
        let mut client = None;
        for (setting, value) in secret_settings(&mut self) {
            if !is_reference(value) {
                continue;
            }
            let reference = value.clone();
            let secret = fetch(&secrets, &tls, &mut client, &reference)
                .await
                .with_context(|| format!("{setting}: cannot read the secret {reference:?}"))?;
            *value = secret;
        }
        self.validate()?;
        Ok(self)
    }
}

async fn fetch(
    secrets: &SecretsConfig,
    tls: &retail_tls::TlsConfig,
    client: &mut Option<reqwest::Client>,
    reference: &str,
) -> anyhow::Result<String> {
    if let Some(path) = reference.strip_prefix("file:") {
        let text = tokio::fs::read_to_string(path)
            .await
            .with_context(|| format!("cannot read {path}"))?;
        let text = text
            .strip_suffix('\n')
            .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
        if text.is_empty() {
            bail!("{path} is empty");
        }
        return Ok(text.to_owned());
    }
    if let Some(name) = reference.strip_prefix("env:") {
        return match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(value),
            Ok(_) => bail!("the variable {name} is empty"),
            Err(_) => bail!("the variable {name} is not set"),
        };
    }
    let client = match client {
        Some(client) => client,
        None => client.insert(
            reqwest::Client::builder()
                .use_preconfigured_tls(tls.client_config().context("cannot use [tls]")?)
                .timeout(Duration::from_secs(10))
                .build()
                .context("cannot make an HTTP client")?,
        ),
    };
    if let Some(path) = reference.strip_prefix("vault:") {
        return vault_secret(secrets, client, path).await;
    }
    let Some(id) = reference.strip_prefix("aws-sm:") else {
        bail!("not a secret reference");
    };
    let (id, key) = match id.split_once('#') {
        Some((id, key)) => (id, Some(key)),
        None => (id, None),
    };
    if id.is_empty() {
        bail!("no secret id after aws-sm:");
    }
    let text = aws_secret(secrets, client, id).await?;
    match key {
        None => Ok(text),
        Some(key) => {
            let object: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
                anyhow!("the secret is not a JSON object, so it has no key {key:?}")
            })?;
            match object.get(key) {
                Some(serde_json::Value::String(value)) if !value.is_empty() => Ok(value.clone()),
                Some(_) => bail!("the secret's {key:?} is not a non-empty text"),
                None => bail!("the secret has no key {key:?}"),
            }
        }
    }
}

/// The text under `key` of a KV version 2 secret, `reference` being `MOUNT/PATH#key`:
/// `GET {addr}/v1/MOUNT/data/PATH` with `X-Vault-Token`, answered with
/// `{"data": {"data": {key: text, ...}, "metadata": ...}}` (Vault's documented API; not run
/// against a real Vault).
async fn vault_secret(
    secrets: &SecretsConfig,
    client: &reqwest::Client,
    reference: &str,
) -> anyhow::Result<String> {
    let vault = Vault {
        addr: Some(secrets.vault_addr.clone())
            .filter(|addr| !addr.is_empty())
            .or_else(|| env_nonempty("VAULT_ADDR"))
            .ok_or_else(|| anyhow!("neither secrets.vault_addr nor VAULT_ADDR is set"))?,
        token: env_nonempty("VAULT_TOKEN").ok_or_else(|| anyhow!("VAULT_TOKEN is not set"))?,
        namespace: env_nonempty("VAULT_NAMESPACE"),
    };
    vault_kv(&vault, client, reference).await
}

/// Where Vault is and how to call it.
struct Vault {
    addr: String,
    token: String,
    namespace: Option<String>,
}

/// [`vault_secret`] with Vault's address and token given.
async fn vault_kv(
    vault: &Vault,
    client: &reqwest::Client,
    reference: &str,
) -> anyhow::Result<String> {
    let Some((path, key)) = reference.split_once('#') else {
        bail!("a vault: reference names a key: vault:MOUNT/PATH#key");
    };
    let Some((mount, secret)) = path
        .split_once('/')
        .filter(|(m, s)| !m.is_empty() && !s.is_empty())
    else {
        bail!("a vault: reference names a mount and a path: vault:MOUNT/PATH#key");
    };
    let addr = &vault.addr;
    let url = format!("{}/v1/{mount}/data/{secret}", addr.trim_end_matches('/'));
    let mut request = client.get(&url).header("x-vault-token", &vault.token);
    if let Some(namespace) = &vault.namespace {
        request = request.header("x-vault-namespace", namespace);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach Vault at {addr}"))?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("Vault answered {status} without JSON"))?;
    if !status.is_success() {
        let errors = answer["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        bail!("Vault answered {status} for {mount}/{secret}: {errors}");
    }
    match answer["data"]["data"].get(key) {
        Some(serde_json::Value::String(value)) if !value.is_empty() => Ok(value.clone()),
        Some(_) => bail!("the secret's {key:?} is not a non-empty text"),
        None => bail!("the secret has no key {key:?}"),
    }
}

/// AWS credentials from the standard variables.
#[derive(Debug)]
struct Credentials {
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `SecretString` of the secret `id`, from Secrets Manager's `GetSecretValue`.
async fn aws_secret(
    secrets: &SecretsConfig,
    client: &reqwest::Client,
    id: &str,
) -> anyhow::Result<String> {
    let credentials = Credentials {
        access_key: env_nonempty("AWS_ACCESS_KEY_ID")
            .ok_or_else(|| anyhow!("AWS_ACCESS_KEY_ID is not set"))?,
        secret_key: env_nonempty("AWS_SECRET_ACCESS_KEY")
            .ok_or_else(|| anyhow!("AWS_SECRET_ACCESS_KEY is not set"))?,
        session_token: env_nonempty("AWS_SESSION_TOKEN"),
    };
    let region = [
        Some(secrets.aws_region.clone()).filter(|r| !r.is_empty()),
        env_nonempty("AWS_REGION"),
        env_nonempty("AWS_DEFAULT_REGION"),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint = if secrets.aws_endpoint.is_empty() {
        format!("https://secretsmanager.{region}.amazonaws.com")
    } else {
        secrets.aws_endpoint.trim_end_matches('/').to_owned()
    };
    let url = url::Url::parse(&endpoint)
        .with_context(|| format!("secrets.aws_endpoint {endpoint:?} is not a URL"))?;
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => bail!("secrets.aws_endpoint {endpoint:?} names no host"),
    };
    let body = serde_json::json!({ "SecretId": id }).to_string();
    let now = chrono::Utc::now();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = vec![
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        ("host".to_owned(), host),
        ("x-amz-date".to_owned(), amz_date.clone()),
        (
            "x-amz-target".to_owned(),
            "secretsmanager.GetSecretValue".to_owned(),
        ),
    ];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    let authorization = sigv4(&SigV4 {
        method: "POST",
        path: "/",
        headers: &headers,
        body: body.as_bytes(),
        region: &region,
        service: "secretsmanager",
        access_key: &credentials.access_key,
        secret_key: &credentials.secret_key,
        amz_date: &amz_date,
    });
    let mut request = client.post(format!("{endpoint}/")).body(body);
    for (name, value) in headers.iter().filter(|(name, _)| name != "host") {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request
        .header("authorization", authorization)
        .send()
        .await
        .with_context(|| format!("cannot reach Secrets Manager at {endpoint}"))?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("Secrets Manager answered {status} without JSON"))?;
    if !status.is_success() {
        let kind = answer["__type"].as_str().unwrap_or("an error");
        let kind = kind.rsplit('#').next().unwrap_or(kind);
        let message = answer["message"]
            .as_str()
            .or_else(|| answer["Message"].as_str())
            .unwrap_or_default();
        bail!("Secrets Manager answered {status}: {kind} {message}");
    }
    match answer["SecretString"].as_str() {
        Some(text) if !text.is_empty() => Ok(text.to_owned()),
        _ => bail!("the secret has no SecretString (binary secrets are not supported)"),
    }
}

/// What AWS Signature Version 4 signs.
struct SigV4<'a> {
    method: &'a str,
    path: &'a str,
    /// Every header sent, names in lower case (`host` included).
    headers: &'a [(String, String)],
    body: &'a [u8],
    region: &'a str,
    service: &'a str,
    access_key: &'a str,
    secret_key: &'a str,
    /// `YYYYMMDD'T'HHMMSS'Z'`, also sent as `x-amz-date`.
    amz_date: &'a str,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        data.as_bytes(),
    )
    .as_ref()
    .to_vec()
}

/// The `Authorization` header of a request without a query string, as AWS documents it
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>).
fn sigv4(request: &SigV4<'_>) -> String {
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.trim()))
        .collect();
    headers.sort_unstable();
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        request.path,
        hex::encode(Sha256::digest(request.body))
    );
    let day = &request.amz_date[..8];
    let scope = format!("{day}/{}/{}/aws4_request", request.region, request.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        request.amz_date,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = hmac(format!("AWS4{}", request.secret_key).as_bytes(), day);
    let key = hmac(&key, request.region);
    let key = hmac(&key, request.service);
    let key = hmac(&key, "aws4_request");
    let signature = hex::encode(hmac(&key, &string_to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        request.access_key
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers one HTTP request on a loopback port with `status` and `body`, returning the
    /// port and what the request was.
    async fn answer_once(
        status: &'static str,
        body: String,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let read = socket.read(&mut request).await.unwrap();
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request[..read]).to_lowercase()
        });
        (port, task)
    }

    /// Vault's KV version 2 answer as its documentation gives it (no real Vault runs here).
    #[tokio::test]
    async fn vault_kv_secrets_are_read_as_vault_documents_them() {
        let body = serde_json::json!({
            "data": {"data": {"master_key": "00ff"}, "metadata": {"version": 3}}
        })
        .to_string();
        let (port, request) = answer_once("200 OK", body).await;
        let vault = |port: u16| Vault {
            addr: format!("http://127.0.0.1:{port}"),
            token: "s.test-token".to_owned(),
            namespace: None,
        };
        let client = reqwest::Client::new();
        let secret = vault_kv(&vault(port), &client, "secret/retail/lake#master_key").await;
        assert_eq!(secret.unwrap(), "00ff");
        let request = request.await.unwrap();
        assert!(
            request.starts_with("get /v1/secret/data/retail/lake http/1.1"),
            "{request}"
        );
        assert!(request.contains("x-vault-token: s.test-token"), "{request}");

        let (port, _) = answer_once(
            "403 Forbidden",
            r#"{"errors":["permission denied"]}"#.to_owned(),
        )
        .await;
        let error = vault_kv(&vault(port), &client, "secret/retail/lake#master_key")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("403") && error.contains("permission denied"),
            "{error}"
        );
        for bad in ["secret/retail", "nomount#key", "/x#key"] {
            assert!(vault_kv(&vault(port), &client, bad).await.is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_match_aws_test_suite() {
        // "get-vanilla" of AWS's Signature Version 4 test suite.
        let headers = [
            ("host".to_owned(), "example.amazonaws.com".to_owned()),
            ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
        ];
        let authorization = sigv4(&SigV4 {
            method: "GET",
            path: "/",
            headers: &headers,
            body: b"",
            region: "us-east-1",
            service: "service",
            access_key: "AKIDEXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            amz_date: "20150830T123600Z",
        });
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[tokio::test]
    async fn files_and_variables_hold_secrets_and_their_absence_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = dir.path().join("jwt");
        std::fs::write(&jwt, "a secret of at least thirty-two bytes, from a file\n").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let mut config = Config::default();
        config.api.jwt_secret = format!("file:{}", jwt.display());
        // SAFETY of the test: a variable name of its own.
        let name = "RETAIL_TEST_SECRETS_TYPESENSE_KEY";
        assert!(std::env::var(name).is_err());
        config.search.typesense_api_key = format!("env:{name}");
        config.metadata.url = "postgres://stays@localhost/db".to_owned();
        let error = config.clone().resolve_secrets().await.unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            format!(
                "search.typesense_api_key: cannot read the secret \"env:{name}\": the variable \
                 {name} is not set"
            )
        );
        config.search.typesense_api_key = format!("file:{}", empty.display());
        let error = config.clone().resolve_secrets().await.unwrap_err();
        assert!(format!("{error:#}").contains("is empty"), "{error:#}");
        config.search.typesense_api_key = "plain".to_owned();
        let resolved = config.resolve_secrets().await.unwrap();
        assert_eq!(
            resolved.api.jwt_secret,
            "a secret of at least thirty-two bytes, from a file"
        );
        assert_eq!(resolved.search.typesense_api_key, "plain");
        assert_eq!(resolved.metadata.url, "postgres://stays@localhost/db");
        assert!(is_reference("aws-sm:prod/jwt#key"));
        assert!(!is_reference("postgres://u@h/db"));
    }
}
