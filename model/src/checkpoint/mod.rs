//! HuggingFace checkpoints: import (safetensors, from bytes or files), export, and
//! re-encoding in another precision; where a model comes from (a directory, the zoo's
//! pretrained checkpoints, any hub id). Model directories, export and conversion work on files,
//! so they are native-only; the browser imports from bytes.

#[cfg(not(target_arch = "wasm32"))]
pub mod convert;
#[cfg(not(target_arch = "wasm32"))]
pub mod dir;
#[cfg(not(target_arch = "wasm32"))]
pub mod export;
pub mod import;
pub mod keys;
#[cfg(not(target_arch = "wasm32"))]
pub mod source;
#[cfg(not(target_arch = "wasm32"))]
pub mod zoo;

#[cfg(not(target_arch = "wasm32"))]
pub use dir::{load_model_dir, load_pretraining_dir, load_tokenizer, read_config, weights_path};
#[cfg(not(target_arch = "wasm32"))]
pub use export::{
    bert_tokenizer_config, copy_tokenizer_files, save_bert_for_pretraining, save_bert_model,
    save_hf_model, to_hf_safetensors, write_vocab_txt,
};
pub use import::{
    HfTensors, LoadReport, load_bert_for_pretraining, load_bert_for_question_answering,
    load_bert_for_sequence_classification, load_bert_model,
};
pub use keys::{KeyAction, Layout, burn_to_hf, hf_to_burn};
#[cfg(not(target_arch = "wasm32"))]
pub use source::{ModelRequest, ModelSource, download_model};
