//! The HTTP surface: text-embeddings-inference's routes and shapes (`/embed`, `/embed_all`,
//! `/predict`, `/tokenize`, `/info`, `/health`, `/metrics`) and OpenAI's `/v1/embeddings`.
//! Handlers check and tokenize the request, hand the ids to the batcher and shape its answer;
//! every error is a JSON body `{"error", "error_type"}` with TEI's status codes.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use bert_model::classify::{Outputs, PairIds};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::batcher::{ANSWER_TIMEOUT, Batcher, Embedded, Job, Model, Output, Refused, Task};
use crate::metrics::Metrics;

/// The limits a deployment sets (`bert-serve --help`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_batch_tokens: usize,
    /// Inputs per forward pass at most (`usize::MAX`: only the token budget bounds it).
    pub max_batch_inputs: usize,
    pub max_concurrent_requests: usize,
    pub max_client_batch_size: usize,
    pub max_input_length: usize,
}

/// What every handler shares.
pub struct AppState {
    pub model: Model,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub model_id: String,
    pub backend: String,
}

/// An error answer: TEI's `{"error", "error_type"}`.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn validation(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "validation",
            message: message.into(),
        }
    }

    /// A route the served model cannot answer (TEI: 424 with the model's kind).
    fn wrong_model(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FAILED_DEPENDENCY,
            kind: "backend",
            message: message.into(),
        }
    }
}

impl AppState {
    /// The embedding model, or the error a classifier gives on embedding routes.
    fn embedder(&self) -> Result<&bert_model::BertEmbedding, ApiError> {
        match &self.model {
            Model::Embedding(e) => Ok(e),
            Model::Classifier(_) => Err(ApiError::wrong_model(format!(
                "{} is a classification model: use /predict (embedding routes need an \
                 encoder or sentence-transformers model)",
                self.model_id
            ))),
        }
    }

    /// Tokenize texts (and pairs, for a classifier) as the served model does.
    fn encode(
        &self,
        inputs: &[(String, Option<String>)],
    ) -> Result<Vec<tokenizers::Encoding>, ApiError> {
        let encoded = match &self.model {
            Model::Embedding(e) => {
                if inputs.iter().any(|(_, b)| b.is_some()) {
                    return Err(ApiError::validation(
                        "an embedding model takes single texts, not pairs",
                    ));
                }
                let texts: Vec<String> = inputs.iter().map(|(a, _)| a.clone()).collect();
                e.encode(&texts)
            }
            Model::Classifier(c) => c.encode(inputs),
        };
        encoded.map_err(|e| ApiError::validation(format!("tokenization failed: {e:#}")))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "error_type": self.kind });
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        Self {
            status: if status == StatusCode::PAYLOAD_TOO_LARGE {
                status
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            kind: if status == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "validation"
            },
            message: rejection.body_text(),
        }
    }
}

/// One string or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Inputs {
    One(String),
    Many(Vec<String>),
}

impl Inputs {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedRequest {
    inputs: Inputs,
    #[serde(default)]
    normalize: Option<bool>,
    #[serde(default)]
    truncate: Option<bool>,
    /// TEI accepts it; only the side the tokenizer cuts is supported (right).
    #[serde(default)]
    truncation_direction: Option<String>,
    /// TEI's prompt names: not supported by BERT models without prompts.
    #[serde(default)]
    prompt_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OpenAiRequest {
    input: Inputs,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
}

/// TEI's predict input: one text, one pair (`["a", "b"]`), or a batch of either.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Sequence {
    Single(String),
    Pair(String, String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PredictInputs {
    One(Sequence),
    Batch(Vec<Sequence>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest {
    inputs: PredictInputs,
    /// Logits as they come out (default: softmax probabilities).
    #[serde(default)]
    raw_scores: bool,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    inputs: Inputs,
    #[serde(default)]
    add_special_tokens: Option<bool>,
}

/// The routes, with `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/embed", post(embed))
        .route("/embed_all", post(embed_all))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/embeddings", post(openai_embeddings))
        .route("/tokenize", post(tokenize))
        .route("/predict", post(predict))
        .route("/info", get(info))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        // 2 MiB of JSON is far above any allowed batch of allowed inputs.
        .layer(DefaultBodyLimit::max(2 << 20))
        .with_state(state)
}

/// Check `inputs` (texts, or pairs for a classifier) against the limits and tokenize them;
/// `truncate`: take long inputs cut at the limit instead of refusing them.
fn tokenize_inputs(
    state: &AppState,
    inputs: Vec<(String, Option<String>)>,
    truncate: bool,
) -> Result<Vec<PairIds>, ApiError> {
    if inputs.is_empty() {
        return Err(ApiError::validation("`inputs` cannot be empty"));
    }
    let max = state.limits.max_client_batch_size;
    if inputs.len() > max {
        return Err(ApiError::validation(format!(
            "batch size {} > maximum allowed batch size {max}",
            inputs.len()
        )));
    }
    if let Some(i) = inputs
        .iter()
        .position(|(a, b)| a.is_empty() || b.as_ref().is_some_and(String::is_empty))
    {
        return Err(ApiError::validation(format!("`inputs[{i}]` is empty")));
    }
    let encodings = state.encode(&inputs)?;
    let limit = state.limits.max_input_length;
    let mut tokenized = Vec::with_capacity(encodings.len());
    for (i, e) in encodings.iter().enumerate() {
        // Overflowing pieces carry their own [CLS]/[SEP]: count their text tokens only.
        let overflow: usize = e
            .get_overflowing()
            .iter()
            .map(|o| {
                o.get_special_tokens_mask()
                    .iter()
                    .filter(|&&m| m == 0)
                    .count()
            })
            .sum();
        let given = e.get_ids().len() + overflow;
        if !truncate && overflow > 0 {
            return Err(ApiError::validation(format!(
                "`inputs[{i}]` must have less than {limit} tokens. Given: {given}; send \
                 \"truncate\": true to cut it"
            )));
        }
        // The tokenizer cut it at the limit already (see `Model::load`).
        let (ids, segments) = (e.get_ids().to_vec(), e.get_type_ids().to_vec());
        tokenized.push(PairIds { ids, segments });
    }
    Ok(tokenized)
}

/// Texts as (text, no pair).
fn singles(texts: Vec<String>) -> Vec<(String, Option<String>)> {
    texts.into_iter().map(|t| (t, None)).collect()
}

/// Queue `ids` and wait for the batcher's answer.
async fn run(state: &AppState, inputs: Vec<PairIds>, task: Task) -> Result<Vec<Output>, ApiError> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        inputs,
        task,
        reply,
        queued: Instant::now(),
    };
    match state.batcher.submit(job) {
        Ok(()) => {}
        Err(Refused::QueueFull) => {
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "overloaded",
                message: format!(
                    "Model is overloaded: {} requests are waiting already",
                    state.limits.max_concurrent_requests
                ),
            });
        }
        Err(Refused::Stopped) => {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "unhealthy",
                message: "the server is shutting down".into(),
            });
        }
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(Ok(rows))) => Ok(rows),
        Ok(Ok(Err(message))) => Err(ApiError {
            status: StatusCode::FAILED_DEPENDENCY,
            kind: "backend",
            message,
        }),
        Ok(Err(_)) | Err(_) => Err(ApiError {
            status: StatusCode::FAILED_DEPENDENCY,
            kind: "backend",
            message: "the encoder did not answer".into(),
        }),
    }
}

/// Queue an embedding request and take its vectors.
async fn run_embed(
    state: &AppState,
    inputs: Vec<PairIds>,
    normalize: bool,
    with_tokens: bool,
) -> Result<Vec<Embedded>, ApiError> {
    let task = Task::Embed {
        normalize,
        with_tokens,
    };
    run(state, inputs, task)
        .await?
        .into_iter()
        .map(|output| match output {
            Output::Vectors(v) => Ok(v),
            Output::Scores(_) => Err(ApiError::wrong_model("the model answered scores")),
        })
        .collect()
}

/// Count the request and its outcome.
fn counted<T: IntoResponse>(state: &AppState, result: Result<T, ApiError>) -> Response {
    state.metrics.request();
    match result {
        Ok(body) => {
            state.metrics.success();
            body.into_response()
        }
        Err(e) => {
            state.metrics.failure(e.kind);
            e.into_response()
        }
    }
}

/// Unsupported options of TEI's requests: an error rather than silently ignoring them.
fn check_tei_options(request: &EmbedRequest) -> Result<(), ApiError> {
    if request
        .truncation_direction
        .as_deref()
        .is_some_and(|d| !d.eq_ignore_ascii_case("right"))
    {
        return Err(ApiError::validation(
            "only `truncation_direction: \"Right\"` is supported",
        ));
    }
    if request.prompt_name.is_some() {
        return Err(ApiError::validation(
            "this model has no prompts (`prompt_name`)",
        ));
    }
    Ok(())
}

/// What `/embed` and `/embed_all` share: check, tokenize, queue; `with_tokens` for the token
/// vectors (never normalised), else the sentence vectors (normalised unless asked not to be).
async fn embed_request(
    state: &AppState,
    request: Result<Json<EmbedRequest>, JsonRejection>,
    with_tokens: bool,
) -> Result<Vec<Embedded>, ApiError> {
    let Json(request) = request?;
    check_tei_options(&request)?;
    state.embedder()?;
    let normalize = !with_tokens && request.normalize.unwrap_or(true);
    let ids = tokenize_inputs(
        state,
        singles(request.inputs.into_vec()),
        request.truncate.unwrap_or(false),
    )?;
    run_embed(state, ids, normalize, with_tokens).await
}

async fn embed(
    State(state): State<Arc<AppState>>,
    request: Result<Json<EmbedRequest>, JsonRejection>,
) -> Response {
    let result = embed_request(&state, request, false)
        .await
        .map(|rows| Json(rows.into_iter().map(|r| r.sentence).collect::<Vec<_>>()));
    counted(&state, result)
}

async fn embed_all(
    State(state): State<Arc<AppState>>,
    request: Result<Json<EmbedRequest>, JsonRejection>,
) -> Response {
    let result = embed_request(&state, request, true)
        .await
        .map(|rows| Json(rows.into_iter().map(|r| r.tokens).collect::<Vec<_>>()));
    counted(&state, result)
}

async fn openai_embeddings(
    State(state): State<Arc<AppState>>,
    request: Result<Json<OpenAiRequest>, JsonRejection>,
) -> Response {
    let result = async {
        let Json(request) = request?;
        let base64 = match request.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "`encoding_format` must be \"float\" or \"base64\", not {other:?}"
                )));
            }
        };
        let dim = state.embedder()?.dim();
        if let Some(d) = request.dimensions
            && d != dim
        {
            return Err(ApiError::validation(format!(
                "`dimensions`: this model's vectors have {dim} dimensions, not {d}"
            )));
        }
        let ids = tokenize_inputs(&state, singles(request.input.into_vec()), true)?;
        let tokens: usize = ids.iter().map(|i| i.ids.len()).sum();
        let rows = run_embed(&state, ids, true, false).await?;
        let data: Vec<Value> = rows
            .into_iter()
            .enumerate()
            .map(|(index, r)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = r.sentence.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(r.sentence)
                };
                json!({ "object": "embedding", "embedding": embedding, "index": index })
            })
            .collect();
        Ok(Json(json!({
            "object": "list",
            "data": data,
            "model": request.model.unwrap_or_else(|| state.model_id.clone()),
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        })))
    }
    .await;
    counted(&state, result)
}

async fn tokenize(
    State(state): State<Arc<AppState>>,
    request: Result<Json<TokenizeRequest>, JsonRejection>,
) -> Response {
    let result = (|| {
        let Json(request) = request?;
        let inputs = request.inputs.into_vec();
        if inputs.is_empty() {
            return Err(ApiError::validation("`inputs` cannot be empty"));
        }
        let encodings = state.encode(&singles(inputs.clone()))?;
        let with_special = request.add_special_tokens.unwrap_or(true);
        let lists: Vec<Vec<Value>> = encodings
            .iter()
            .zip(&inputs)
            .map(|(e, text)| {
                let special = e.get_special_tokens_mask();
                e.get_ids()
                    .iter()
                    .zip(e.get_tokens())
                    .zip(e.get_offsets())
                    .zip(special)
                    .filter(|(_, s)| with_special || **s == 0)
                    .map(|(((id, token), &(start, stop)), s)| {
                        let special = *s != 0;
                        json!({
                            "id": id,
                            "text": if special { token.clone() } else { text.get(start..stop).unwrap_or(token).to_string() },
                            "special": special,
                            "start": if special { Value::Null } else { json!(start) },
                            "stop": if special { Value::Null } else { json!(stop) },
                        })
                    })
                    .collect()
            })
            .collect();
        Ok(Json(lists))
    })();
    counted(&state, result)
}

async fn predict(
    State(state): State<Arc<AppState>>,
    request: Result<Json<PredictRequest>, JsonRejection>,
) -> Response {
    let result = async {
        let Json(request) = request?;
        let Model::Classifier(classifier) = &state.model else {
            return Err(ApiError::wrong_model(format!(
                "{} is an embedding model: /predict needs a fine-tuned classifier (the \
                 directory `bert-train finetune-classifier` or `bert-train export --task \
                 classification` writes)",
                state.model_id
            )));
        };
        if request
            .truncation_direction
            .as_deref()
            .is_some_and(|d| !d.eq_ignore_ascii_case("right"))
        {
            return Err(ApiError::validation(
                "only `truncation_direction: \"Right\"` is supported",
            ));
        }
        let (sequences, batched) = match request.inputs {
            PredictInputs::One(s) => (vec![s], false),
            PredictInputs::Batch(v) => (v, true),
        };
        let inputs = sequences
            .into_iter()
            .map(|s| match s {
                Sequence::Single(a) => (a, None),
                Sequence::Pair(a, b) => (a, Some(b)),
            })
            .collect();
        let ids = tokenize_inputs(&state, inputs, request.truncate.unwrap_or(false))?;
        let outputs = run(&state, ids, Task::Predict).await?;
        let answers: Vec<Value> = outputs
            .into_iter()
            .map(|output| match output {
                Output::Scores(scores) => {
                    Ok(scored(classifier.outputs(), scores, request.raw_scores))
                }
                Output::Vectors(_) => Err(ApiError::wrong_model("the model answered vectors")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Json(if batched {
            Value::Array(answers)
        } else {
            answers.into_iter().next().unwrap_or(Value::Null)
        }))
    }
    .await;
    counted(&state, result)
}

/// TEI's predict answer for one input: `[{"label", "score"}]`, highest score first; softmax
/// probabilities unless `raw`; a regression head's value as its one score.
fn scored(outputs: &Outputs, scores: Vec<f32>, raw: bool) -> Value {
    let labels: Vec<String> = match outputs {
        Outputs::Classes(names) => names.clone(),
        Outputs::Regression => vec!["score".into()],
    };
    let values = if raw || matches!(outputs, Outputs::Regression) {
        scores
    } else {
        softmax(&scores)
    };
    let mut pairs: Vec<(String, f32)> = labels.into_iter().zip(values).collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    Value::Array(
        pairs
            .into_iter()
            .map(|(label, score)| json!({ "label": label, "score": score }))
            .collect(),
    )
}

fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|v| v / sum).collect()
}

async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let limits = &state.limits;
    let model_type = match &state.model {
        Model::Embedding(e) => {
            let pooling = match e.pooling() {
                bert_model::embed::Pooling::Mean => "mean",
                bert_model::embed::Pooling::Cls => "cls",
            };
            json!({ "embedding": { "pooling": pooling } })
        }
        Model::Classifier(c) => {
            let labels: Vec<String> = match c.outputs() {
                Outputs::Classes(names) => names.clone(),
                Outputs::Regression => vec!["score".into()],
            };
            let id2label: serde_json::Map<String, Value> = labels
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), json!(l)))
                .collect();
            json!({ "classifier": { "id2label": id2label } })
        }
    };
    let dimension = match &state.model {
        Model::Embedding(e) => json!(e.dim()),
        Model::Classifier(_) => Value::Null,
    };
    Json(json!({
        "model_id": state.model_id,
        "model_dtype": state.model.precision().to_string(),
        "model_type": model_type,
        "dimension": dimension,
        "max_concurrent_requests": limits.max_concurrent_requests,
        "max_input_length": limits.max_input_length,
        "max_batch_tokens": limits.max_batch_tokens,
        "max_batch_requests": (limits.max_batch_inputs != usize::MAX).then_some(limits.max_batch_inputs),
        "max_client_batch_size": limits.max_client_batch_size,
        "backend": state.backend,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn metrics(State(state): State<Arc<AppState>>) -> String {
    state.metrics.render()
}
