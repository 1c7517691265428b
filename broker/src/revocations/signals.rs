//! What a replica's API and its job runner tell each other without a store round trip: a job
//! was accepted (the runner starts at once instead of at its next poll), a job finished
//! (requests waiting for it answer at once).

use tokio::sync::Notify;

#[derive(Default)]
pub struct JobSignals {
    /// A job was accepted on this replica.
    pub accepted: Notify,
    /// This replica finished a job.
    pub finished: Notify,
}
