//! A private PostgreSQL cluster for one test: `initdb` into a temporary directory with
//! `scram-sha-256` for every TCP login (the machine's shared server trusts loopback logins, so a
//! password check against it would prove nothing), on a free port, logging every statement to a
//! file the test can read, stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "scratch-superuser-pw";

pub struct ScratchPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl ScratchPostgres {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A cluster that also accepts TLS, with this certificate and key (PEM).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Self {
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("lh-scratch-pg-")
            .tempdir()
            .expect("temporary directory");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).expect("password file");
        let cluster = Self {
            port: free_port(),
            bin,
            dir,
        };
        cluster.chown_to_postgres();
        cluster.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                SUPERUSER,
                "--pwfile",
                path(&pwfile),
                "--auth=scram-sha-256",
                "--no-sync",
                "--encoding=UTF8",
            ],
        );
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c log_statement=all \
             -c max_connections=300",
            cluster.port,
            path(cluster.dir.path())
        );
        if let Some((cert, key)) = tls {
            let cert_file = cluster.dir.path().join("server.crt");
            let key_file = cluster.dir.path().join("server.key");
            std::fs::write(&cert_file, cert).expect("certificate");
            std::fs::write(&key_file, key).expect("key");
            std::fs::set_permissions(
                &key_file,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .expect("key mode");
            cluster.chown_to_postgres();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                path(&cert_file),
                path(&key_file)
            ));
        }
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&cluster.log_path()),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        cluster
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).expect("server log")
    }

    /// Logs in as `user` with `psql`, that is with libpq's own SCRAM client, and runs `SELECT 1`;
    /// the error text when it fails.
    pub fn psql_login(&self, user: &str, password: &str) -> Result<(), String> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-w",
                "-X",
                "-h",
                "127.0.0.1",
                "-d",
                "postgres",
                "-c",
                "SELECT 1",
            ])
            .args(["-p", &self.port.to_string(), "-U", user])
            .env("PGPASSWORD", password)
            .output()
            .map_err(|e| e.to_string())?;
        match output.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        }
    }

    /// Runs a PostgreSQL program as the `postgres` user when we are root (initdb refuses root).
    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let output = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .expect("run a PostgreSQL program");
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn chown_to_postgres(&self) {
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres", path(self.dir.path())])
                .status()
                .expect("chown");
            assert!(status.success());
        }
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let program = self.bin.join("pg_ctl");
        let args = ["-D", path(&data), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The newest `/usr/lib/postgresql/<major>/bin`, where Debian installs `initdb` and `pg_ctl`.
fn postgres_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (tests/run installs them)")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
        .1
}
