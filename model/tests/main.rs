//! bert-model's integration tests, one module per subject, in one test binary.

mod from_bytes;
