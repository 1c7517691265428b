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
mod secrets;
mod targets;
