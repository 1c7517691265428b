//! Emergency mass revocation: one request revokes every lease matching a selector.
//!
//! - `selector` owns which leases a job takes (and the fence's test for one lease);
//! - `jobs` accepts jobs (row, fence and audit event in one commit) and reports their progress;
//! - `fence` refuses issues and renewals a live fence covers;
//! - `runner` works RUNNING jobs on every replica, in locked batches, at the targets' pace;
//! - `signals` lets a replica's API and runner wake each other.

mod fence;
mod jobs;
mod runner;
mod selector;
mod signals;

pub use fence::Fences;
pub use jobs::{BackendFailures, JobView, MatchCount, Preview, RevocationService, StartJob};
pub use runner::JobRunner;
pub use selector::Selector;
pub use signals::JobSignals;
