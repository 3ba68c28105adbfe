//! The BERT encoder, one burn module per module of HuggingFace's implementation, so that every
//! parameter path is the HF checkpoint key (up to `LayerNorm` → `layer_norm` and
//! `self` → `self_attention`, which Rust naming forces; see `checkpoint::keys`).

pub mod attention;
pub mod bert;
pub mod config;
pub mod embeddings;
pub mod gelu;
pub mod heads;
pub mod layer;
pub mod pooler;
pub mod task_heads;

pub use attention::{BertAttention, BertSelfAttention, BertSelfOutput};
pub use bert::{BertInput, BertModel, BertModelOutput};
pub use config::{Activation, BertConfig, ZOO_NAMES};
pub use embeddings::BertEmbeddings;
pub use heads::{
    BertForPreTraining, BertLMPredictionHead, BertPreTrainingHeads, BertPredictionHeadTransform,
    PreTrainingOutput,
};
pub use layer::{BertEncoder, BertIntermediate, BertLayer, BertOutput};
pub use pooler::BertPooler;
pub use task_heads::{BertForQuestionAnswering, BertForSequenceClassification, SpanLogits};
