//! Building and running the server: connect the store, apply migrations, bind the listener
//! (port 0 in tests; the bound port is recorded), then serve until the shutdown future resolves,
//! draining in-flight requests.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpServer, web};
use secrecy::ExposeSecret;

use crate::alerts::AlertSink;
use crate::api::{self, AppState};
use crate::audit::{AuditLog, JsonLinesSink, TokenHmac};
use crate::auth::{Access, BreakGlass, TokenService};
use crate::crypto::{AwsKms, CachedKms, KeyRingError, Kms, KmsProviders, LocalKms};
use crate::dynamic::{BackendService, LeaseService, PluginRegistry, RoleService, ScheduledLeases};
use crate::policy::PolicyCache;
use crate::revocations::{JobRunner, JobSignals, RevocationService};
use crate::rewrap::RewrapService;
use crate::rotation::{RotationRunner, RotationService, StaticRoleService};
use crate::secrets::SecretService;
use crate::settings::{KmsProvider, KmsSettings, Settings, SettingsError};
use crate::store::{Store, StoreError};
use crate::telemetry;
use crate::tls::{self, TlsError};
use leasehold_scheduler::Scheduler;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyRing(#[from] KeyRingError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot start the audit writer's thread: {0}")]
    AuditWriter(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Builds the KMS providers the settings name: the active one, and the other one when it is
/// configured too (it still unwraps the data keys it wrapped). [`Application::build`] puts the
/// data-key cache in front.
///
/// # Errors
/// When the settings are incomplete or the local key ring cannot be loaded or created.
pub async fn kms_from_settings(settings: &KmsSettings) -> Result<Arc<dyn Kms>, StartupError> {
    settings.validate()?;
    let local: Option<Arc<dyn Kms>> = match (settings.provider, &settings.key_file) {
        (KmsProvider::Ephemeral, _) => Some(Arc::new(LocalKms::ephemeral())),
        (KmsProvider::Local, Some(path)) => Some(Arc::new(LocalKms::load_or_create(path)?)),
        // Beside another provider the ring only unwraps what it wrapped: it must exist.
        (KmsProvider::AwsKms, Some(path)) => Some(Arc::new(LocalKms::load(path)?)),
        (_, None) => None,
    };
    let aws: Option<Arc<dyn Kms>> = match &settings.aws {
        Some(aws) => Some(Arc::new(AwsKms::new(aws).await)),
        None => None,
    };
    let (active, other) = match settings.provider {
        KmsProvider::AwsKms => (aws, local),
        KmsProvider::Local | KmsProvider::Ephemeral => (local, aws),
    };
    let active = active.ok_or_else(|| {
        SettingsError::Invalid(format!(
            "kms.provider = \"{}\" is not configured",
            settings.provider.as_str()
        ))
    })?;
    Ok(Arc::new(KmsProviders::new(
        active,
        other.into_iter().collect(),
    )))
}

/// Connects to the configured store and applies pending migrations.
///
/// # Errors
/// When the store is unreachable or a migration fails.
pub async fn open_store(settings: &Settings) -> Result<Store, StoreError> {
    let store = Store::connect(
        settings.database_url.expose_secret(),
        settings.max_connections,
    )
    .await?;
    store.migrate().await?;
    Ok(store)
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    state: web::Data<AppState>,
    scheduler: Scheduler<ScheduledLeases, LeaseService>,
    revocation_runner: Arc<JobRunner>,
    rotation_runner: RotationRunner,
    revoked_lease_retention: Duration,
}

/// Names this process's scheduler claims: host, process id and a random suffix.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "broker".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &suffix[..8])
}

impl Application {
    /// Binds the listener and wires the services.
    ///
    /// # Errors
    /// When the address cannot be bound or TLS material cannot be loaded.
    pub fn build(
        settings: &Settings,
        store: Store,
        kms: Arc<dyn Kms>,
    ) -> Result<Self, StartupError> {
        let token_hmac = TokenHmac::for_kms(&settings.kms)?;
        let kms: Arc<dyn Kms> = Arc::new(CachedKms::new(kms, settings.kms.cache));
        let listener = TcpListener::bind(settings.listen).map_err(|source| StartupError::Bind {
            addr: settings.listen,
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.listen,
                source,
            })?
            .port();
        if cfg!(feature = "bench-without-audit") {
            tracing::warn!("benchmark build: audit events are NOT recorded");
        }
        let sink = settings
            .audit_sink
            .as_ref()
            .map(|sink| JsonLinesSink::new(sink, settings.audit_timeout()));
        let audit = AuditLog::start(store.clone(), settings.audit_timeout(), sink)
            .map_err(StartupError::AuditWriter)?;
        let registry = Arc::new(PluginRegistry::new(store.clone(), kms.clone()));
        let secrets = SecretService::new(store.clone(), kms.clone(), settings.max_value_bytes);
        let rotation = RotationService::new(
            store.clone(),
            secrets.clone(),
            registry.clone(),
            audit.clone(),
            AlertSink::new(settings.alert_webhook_url.clone()),
        );
        let roles = Arc::new(RoleService::new(store.clone(), registry.clone()));
        let wake_scheduler = Arc::new(tokio::sync::Notify::new());
        let leases = Arc::new(LeaseService::new(
            store.clone(),
            registry.clone(),
            roles.clone(),
            audit.clone(),
            Duration::from_secs(settings.lease_intent_grace_seconds),
            wake_scheduler.clone(),
        ));
        let replica = replica_name();
        let rotation_runner = RotationRunner::new(rotation.clone(), replica.clone());
        let scheduler_config = settings.scheduler_config(replica);
        let job_signals = Arc::new(JobSignals::default());
        let revocation_runner = Arc::new(JobRunner::new(
            store.clone(),
            leases.clone(),
            audit.clone(),
            AlertSink::new(settings.alert_webhook_url.clone()),
            &scheduler_config,
            job_signals.clone(),
        ));
        let scheduler = Scheduler::new(
            Arc::new(ScheduledLeases::new(
                store.clone(),
                audit.clone(),
                AlertSink::new(settings.alert_webhook_url.clone()),
                Duration::from_secs(settings.lease_intent_grace_seconds),
            )),
            leases.clone(),
            scheduler_config,
            wake_scheduler,
        );
        let state = web::Data::new(AppState {
            backends: BackendService::new(store.clone(), registry),
            roles,
            leases,
            revocations: RevocationService::new(store.clone(), audit.clone(), job_signals),
            revocation_fence: Duration::from_secs(settings.revocation_fence_seconds),
            secrets,
            static_roles: StaticRoleService::new(rotation.clone()),
            rotation,
            tokens: TokenService::new(store.clone()),
            access: Access::new(PolicyCache::new(store.clone()), audit.clone()),
            audit,
            token_hmac,
            break_glass: BreakGlass::new(
                store.clone(),
                AlertSink::new(settings.alert_webhook_url.clone()),
            ),
            metrics: telemetry::metrics_handle(),
            max_body_bytes: settings.max_body_bytes(),
            rewrap: RewrapService::new(store.clone(), kms.clone()),
            store,
            kms,
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || api::app(app_state.clone()))
            .disable_signals()
            .shutdown_timeout(10);
        let server = match &settings.tls {
            Some(tls_settings) => server
                .listen_rustls_0_23(listener, tls::server_config(tls_settings)?)
                .map_err(|source| StartupError::Bind {
                    addr: settings.listen,
                    source,
                })?,
            None => server
                .listen(listener)
                .map_err(|source| StartupError::Bind {
                    addr: settings.listen,
                    source,
                })?,
        };
        Ok(Self {
            port,
            server: server.run(),
            state,
            scheduler,
            revocation_runner,
            rotation_runner,
            revoked_lease_retention: Duration::from_secs(settings.revoked_lease_retention_seconds),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tokens(&self) -> &TokenService {
        &self.state.tokens
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = self.server;
        let scheduler = tokio::spawn(self.scheduler.run(std::future::pending()));
        let revocation_runner = tokio::spawn(self.revocation_runner.run());
        let rotation_runner = tokio::spawn(self.rotation_runner.run());
        let gauges = tokio::spawn(crate::dynamic::publish_lease_gauges(
            self.state.store.clone(),
            Duration::from_secs(15),
        ));
        let retention = tokio::spawn(crate::dynamic::purge_revoked_leases(
            self.state.store.clone(),
            self.state.audit.clone(),
            self.revoked_lease_retention,
        ));
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => {
                tracing::warn!("HTTP server exited on its own");
                result
            }
            () = shutdown => {
                tracing::info!("shutdown requested; draining in-flight requests");
                // The stop command is answered by the server future itself, so both are
                // polled together.
                let ((), result) = tokio::join!(handle.stop(true), server);
                scheduler.abort();
                revocation_runner.abort();
                rotation_runner.abort();
                gauges.abort();
                retention.abort();
                self.state.store.close().await;
                tracing::info!("server stopped");
                result
            }
        }
    }
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
