//! Fail-points: named places where a test can make the process die, to prove that a crash there
//! loses nothing. Honoured only in test builds (the `fail-points` feature, which the end-to-end
//! test crate's dev-dependency turns on for `cargo test --workspace`); a binary built without
//! the test crates (`cargo build --bin leasehold`, `cargo run`, a release build) ignores it.
//!
//! `LEASEHOLD_FAILPOINT=<name>` aborts the process (no unwinding, no cleanup, like `SIGKILL`)
//! when execution reaches `hit("<name>")`.

/// Whether the fail-point `name` is enabled (never without the `fail-points` feature).
fn enabled(name: &str) -> bool {
    cfg!(feature = "fail-points") && std::env::var("LEASEHOLD_FAILPOINT").is_ok_and(|v| v == name)
}

/// Aborts the process when the fail-point `name` is enabled.
pub fn hit(name: &str) {
    if enabled(name) {
        eprintln!("fail-point {name} reached: aborting");
        std::process::abort();
    }
}
