//! Integration tests: the real server on port 0, once against SQLite and once against a fresh
//! PostgreSQL database per test.

mod helpers;

mod access;
mod at_rest;
mod audit;
mod bad_input;
mod canary;
mod cli;
mod expiry;
mod kms;
mod kubernetes;
mod leases;
mod moto;
mod revocations;
mod rotation;
// The plugins' private scram-checking PostgreSQL, shared rather than copied; this crate uses
// only part of it.
#[allow(dead_code)]
#[path = "../../../plugins/tests/conformance/scratch_postgres.rs"]
mod scratch_postgres;
mod secrets;
mod targets;
