//! Fine-tuning tasks: data readers and the metrics their leaderboards use. Each is checked
//! against the official implementation (SQuAD's evaluation scripts, scikit-learn, scipy).

pub mod glue;
pub mod metrics;
pub mod squad;
pub mod squad_eval;
