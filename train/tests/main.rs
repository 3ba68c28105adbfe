//! bert-train's integration tests, one module per subject, in one test binary: each binary
//! links burn, and on a two-core CI every link costs minutes. Helpers: `common` (files,
//! tensors, the reference Python), `pretrain_common` (shards and tiny models to train on).

mod common;
mod pretrain_common;

mod checkpoint;
mod cli;
mod convert_cli;
mod export_cli;
mod finetune_cli;
mod finetune_features;
mod finetune_precision;
mod finetune_reference;
mod finetune_resume;
mod hf_roundtrip;
mod hub_models;
#[cfg(feature = "kernel-cache")]
mod kernel_cache;
mod minilm_fidelity;
mod pretrain_cli;
mod pretrain_memorise;
#[cfg(feature = "mpi")]
mod pretrain_mpi;
mod pretrain_parallel;
mod pretrain_precision;
mod pretrain_reference;
mod pretrain_resume;
mod squad_eval;
mod wgsl_kernels;
