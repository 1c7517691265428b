//! `leasehold server`: the dev server (`--dev`) or a production server (`--config`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::CliError;
use crate::dev::DevMode;
use crate::settings::{DEFAULT_LISTEN, Settings};
use crate::startup::{self, Application};
use crate::telemetry;

#[derive(Args)]
pub struct ServerArgs {
    /// Embedded default: SQLite and a local master key in --data-dir, root token on stdout.
    #[arg(long, conflicts_with = "config")]
    dev: bool,
    /// With --dev: keep everything in memory; nothing survives the process.
    #[arg(long, requires = "dev")]
    ephemeral: bool,
    /// With --dev: where the store, master key and root token live.
    #[arg(long, default_value = "./leasehold-data", requires = "dev")]
    data_dir: PathBuf,
    /// Production configuration file (TOML; see deploy/leasehold.example.toml).
    #[arg(long, env = "LEASEHOLD_CONFIG", required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Listen address (overrides the configuration file).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// With --dev: use this root token instead of a generated one.
    #[arg(
        long,
        env = "LEASEHOLD_DEV_ROOT_TOKEN",
        hide_env_values = true,
        requires = "dev"
    )]
    dev_root_token: Option<String>,
}

impl std::fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerArgs")
            .field("dev", &self.dev)
            .field("ephemeral", &self.ephemeral)
            .field("data_dir", &self.data_dir)
            .field("config", &self.config)
            .field("listen", &self.listen)
            .field(
                "dev_root_token",
                &self.dev_root_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

pub async fn run(args: ServerArgs) -> Result<(), CliError> {
    telemetry::init_logging("info");
    let dev = args.dev.then(|| {
        if args.ephemeral {
            DevMode::ephemeral()
        } else {
            DevMode::persistent(args.data_dir.clone())
        }
    });
    let mut settings = match (&dev, &args.config) {
        (Some(dev), _) => dev
            .settings(args.listen.unwrap_or(DEFAULT_LISTEN))
            .map_err(CliError::other)?,
        (None, Some(path)) => Settings::load(path).map_err(CliError::other)?,
        (None, None) => return Err(CliError::Usage("pass --dev or --config FILE".into())),
    };
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }

    let kms = startup::kms_from_settings(&settings.kms)
        .await
        .map_err(CliError::other)?;
    let store = startup::open_store(&settings)
        .await
        .map_err(CliError::other)?;
    let app = Application::build(&settings, store, kms).map_err(CliError::other)?;

    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let addr = format!("{scheme}://{}:{}", settings.listen.ip(), app.port());
    if let Some(dev) = &dev {
        let token = dev
            .root_token(app.tokens(), args.dev_root_token.map(SecretString::from))
            .await
            .map_err(CliError::other)?;
        banner(format_args!(
            "Leasehold dev server listening on {addr}\nRoot Token: {token}\n\n    \
             export LEASEHOLD_ADDR={addr}\n    export LEASEHOLD_TOKEN={token}",
            token = token.expose_secret()
        ));
    } else {
        banner(format_args!("Leasehold listening on {addr}"));
    }
    tracing::info!(%addr, "listening");
    app.run_until_stopped(startup::shutdown_signal())
        .await
        .map_err(CliError::other)
}

/// Prints the start-up banner, best effort: unlike a command's output, a server's life does not
/// depend on whoever reads its standard output (`leasehold server --dev | head -2` keeps serving;
/// its logs go to standard error).
fn banner(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}
