//! bert-model's integration tests, one module per subject, in one test binary.

mod cpu_kernels;
mod from_bytes;
