//! A small typed client for the broker's HTTP API, used by the client commands and `bench`.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ClientArgs;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{message} (HTTP {status}{code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the broker at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no token: set LEASEHOLD_TOKEN or pass --token")]
    NoToken,
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub fn other(error: impl std::fmt::Display) -> Self {
        Self::Other(error.to_string())
    }
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    addr: String,
    token: Option<String>,
}

impl ApiClient {
    /// # Errors
    /// When the CA file cannot be read or the HTTP client cannot be built.
    pub fn new(args: &ClientArgs) -> Result<Self, CliError> {
        Self::with_pool(args, 1)
    }

    /// A client that keeps up to `idle_per_host` connections open (one per benchmark worker).
    ///
    /// # Errors
    /// When the CA file cannot be read or the HTTP client cannot be built.
    pub fn with_pool(args: &ClientArgs, idle_per_host: usize) -> Result<Self, CliError> {
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(idle_per_host.max(1))
            .tcp_nodelay(true);
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                CliError::Usage(format!("{} is not a PEM certificate: {e}", path.display()))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Self {
            http: builder.build().map_err(CliError::other)?,
            addr: args.addr.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and decodes the JSON answer; non-2xx answers become `CliError::Api`.
    ///
    /// # Errors
    /// Connection failures and API errors.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, CliError> {
        let token = self.token.as_deref().ok_or(CliError::NoToken)?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.addr))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| CliError::Connect {
            addr: self.addr.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(CliError::other)?;
        if status.is_success() {
            // 204 answers carry no body; they decode as JSON null.
            let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(body).map_err(CliError::other);
        }
        Err(api_error(status, &bytes))
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(|e| e.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    CliError::Api {
        status: status.as_u16(),
        code: field("code").map(|c| format!(" {c}")).unwrap_or_default(),
        message: field("message").unwrap_or_else(|| "the broker returned an error".into()),
    }
}
