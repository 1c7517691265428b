//! The audit trail: events (`event`), their durable, group-committed writer (`writer`), events
//! committed in their operation's own transaction (`in_transaction`), the JSON-lines stream for
//! a SIEM (`sink`) and the hash-chain check (`verify`). No audit, no secret: an operation whose
//! event is not durable fails with 503.

mod event;
mod in_transaction;
mod sink;
mod token_hmac;
mod verify;
mod writer;

pub use event::{AuditEvent, Decision, EventType};
pub use in_transaction::TransactionEvents;
pub use sink::{JsonLinesSink, SinkSettings};
pub use token_hmac::TokenHmac;
pub use verify::{VerifyReport, verify_chain};
pub use writer::{AuditError, AuditLog};
