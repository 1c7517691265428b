//! End-to-end tests of the `leasehold` binary live in `tests/`; this crate has no library code.
