//! The alert manager's adapters and loop: notifications posted over HTTP (reqwest, TLS from
//! `[tls]`), and the background task of `retail serve` that evaluates the rules and sends what
//! is due, in the one process holding the `alerts` claim.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use retail_metadata::MetadataStore;
use retail_services::AlertsService;
use retail_services::alerts::{AlertsConfig, Webhook};

/// Posts notifications as JSON over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpWebhook {
    client: reqwest::Client,
}

impl HttpWebhook {
    /// A client trusting `[tls]`'s authorities, giving up on a receiver after `timeout`.
    ///
    /// # Errors
    ///
    /// When `tls.ca_file` cannot be used.
    pub fn new(tls: &retail_tls::TlsConfig, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls.client_config().context("cannot use [tls]")?)
            .timeout(timeout)
            .build()
            .context("cannot build the HTTP client of alert notifications")?;
        Ok(Self { client })
    }
}

#[async_trait]
impl Webhook for HttpWebhook {
    async fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        let response = self
            .client
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|error| format!("{url}: {}", retail_domain::error::error_chain(&error)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{url} answered {status}"))
        }
    }
}

/// Evaluates the rules every `alerts.evaluate_seconds` and sends what is due every
/// `alerts.tick_seconds`, while this process holds the `alerts` claim (another replica may
/// hold it: then it waits and tries again), until `stop`.
pub(crate) async fn run_in_background(
    alerts: Arc<dyn AlertsService>,
    store: Arc<dyn MetadataStore>,
    config: AlertsConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let tick = Duration::from_secs(config.tick_seconds);
    let evaluate_every = Duration::from_secs(config.evaluate_seconds);
    let mut claim = None;
    let mut evaluated: Option<tokio::time::Instant> = None;
    loop {
        if claim.is_none() {
            match store.claim("alerts").await {
                Ok(held) => {
                    tracing::info!(
                        "this process evaluates the alert rules and sends notifications"
                    );
                    claim = Some(held);
                }
                Err(retail_metadata::Error::Busy { .. }) => {}
                Err(error) => tracing::warn!(%error, "cannot claim the alert manager"),
            }
        }
        if claim.is_some() {
            if evaluated.is_none_or(|at| at.elapsed() >= evaluate_every) {
                evaluated = Some(tokio::time::Instant::now());
                if let Err(error) = alerts.evaluate().await {
                    tracing::warn!(error = %error.detail(), "alert rules not evaluated");
                }
            }
            if let Err(error) = alerts.tick().await {
                tracing::warn!(error = %error.detail(), "alert notifications not sent");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
}
