//! Alerts for on-call: a JSON POST to the configured webhook. Delivery runs in the background
//! with a timeout, so a slow receiver never holds a request; failures are logged and counted.

use std::time::Duration;

use serde_json::Value;

#[derive(Clone)]
pub struct AlertSink {
    webhook: Option<String>,
    http: reqwest::Client,
}

impl AlertSink {
    pub fn new(webhook: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self { webhook, http }
    }

    /// Sends `event` to the webhook, if one is configured.
    pub fn send(&self, event: Value) {
        let Some(url) = self.webhook.clone() else {
            return;
        };
        let http = self.http.clone();
        tokio::spawn(async move {
            let kind = event["event"].as_str().unwrap_or("unknown").to_owned();
            let delivered = http
                .post(&url)
                .json(&event)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !delivered {
                metrics::counter!("leasehold_alert_delivery_failures_total").increment(1);
                tracing::error!(event = %kind, "alert webhook delivery failed");
            }
        });
    }
}
