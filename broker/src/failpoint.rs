//! Fail-points: named places where a test can make the process die, to prove that a crash there
//! loses nothing. Compiled only into debug builds; release binaries ignore the variable.
//!
//! `LEASEHOLD_FAILPOINT=<name>` aborts the process (no unwinding, no cleanup, like `SIGKILL`)
//! when execution reaches `hit("<name>")`.

/// Whether the fail-point `name` is enabled (never in release builds).
pub fn enabled(name: &str) -> bool {
    cfg!(debug_assertions) && std::env::var("LEASEHOLD_FAILPOINT").is_ok_and(|v| v == name)
}

/// Aborts the process when the fail-point `name` is enabled.
pub fn hit(name: &str) {
    if enabled(name) {
        eprintln!("fail-point {name} reached: aborting");
        std::process::abort();
    }
}
