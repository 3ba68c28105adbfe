//! `bert-serve --model NAME|ORG/NAME|DIR --port 8080`: the HTTP embedding server.

use anyhow::{Context, Result, ensure};
use bert_model::checkpoint::ModelSource;
use bert_model::{BackendKind, Precision};
use bert_serve::{Limits, Model, ModelOptions, Server};
use clap::Parser;

const AFTER_HELP: &str = "\
Example:
  bert-serve --model sentence-transformers/all-MiniLM-L6-v2 --port 8080
  curl 127.0.0.1:8080/embed -H 'Content-Type: application/json' \\
      -d '{\"inputs\": [\"A man is playing a guitar.\", \"Someone plays music.\"]}'

  bert-serve --model rte-out/best --port 8080      # a finetune-classifier directory
  curl 127.0.0.1:8080/predict -H 'Content-Type: application/json' \\
      -d '{\"inputs\": [\"A man plays.\", \"Someone makes music.\"]}'

Routes (text-embeddings-inference's shapes): POST /embed, /embed_all, /tokenize for an encoder;
POST /predict (a text, a pair, or a batch of either) for a fine-tuned classifier; GET /info,
/health, /metrics (Prometheus); OpenAI's POST /v1/embeddings. Concurrent requests are queued and
packed into batches of similar length under --max-batch-tokens by one worker that owns the
model. SIGTERM or Ctrl-C: stop taking requests, answer those in flight, exit 0.";

#[derive(Debug, Parser)]
#[command(version, about = "Serve a BERT encoder over HTTP (text-embeddings-inference and OpenAI API)", after_help = AFTER_HELP)]
struct Args {
    /// A model directory, a HuggingFace Hub id or a model-zoo name (its pretrained checkpoint
    /// on --dataset-name), downloaded into the hub cache once. A directory whose weights have a
    /// classification head (finetune-classifier's, export's) is served for /predict.
    #[arg(long)]
    model: String,
    /// The pretraining dataset of a zoo --model.
    #[arg(long, default_value = "book_corpus_wiki_en_uncased")]
    dataset_name: String,
    /// Hub revision (branch, tag or commit) of --model.
    #[arg(long)]
    revision: Option<String>,
    /// Address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    hostname: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Where the model runs: auto (a hardware GPU if there is one, else the CPU), cpu (burn
    /// flex), wgpu, vulkan (SPIR-V), cuda (if built with it).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Tokens (padded) per forward pass at most.
    #[arg(long, default_value_t = 16384)]
    max_batch_tokens: usize,
    /// Inputs per forward pass at most, besides the token budget: a batch of sorted inputs
    /// cut into passes of this many pads less. Default: 32 on the CPU (where larger batches
    /// are no faster), no limit on GPU backends.
    #[arg(long)]
    max_batch_requests: Option<usize>,
    /// Requests waiting at most; more are answered 429.
    #[arg(long, default_value_t = 512)]
    max_concurrent_requests: usize,
    /// Inputs per request at most.
    #[arg(long, default_value_t = 32)]
    max_client_batch_size: usize,
    /// Tokens per input at most ([CLS]/[SEP] included; a pair loses from its longer text
    /// first); default: the model's limit.
    #[arg(long)]
    max_input_length: Option<usize>,
    /// What the encoder computes in: float32, or float16/bfloat16 (weights cast once, half the
    /// memory; the device must have the arithmetic).
    #[arg(long, default_value = "float32")]
    dtype: String,
    /// Pad embedding batches to a multiple of N tokens (GPU backends compile kernels per
    /// shape). Default: 32 on GPU backends, 1 on the CPU.
    #[arg(long)]
    pad_to_multiple_of: Option<usize>,
    /// Before listening, run a batch of every padded length (at batch 1 and the largest the
    /// token budget allows), so that a GPU has compiled its kernels before the first request.
    /// Default: on for GPU backends, off on the CPU.
    #[arg(long, overrides_with = "no_warmup")]
    warmup: bool,
    /// Start listening without warming up.
    #[arg(long, overrides_with = "warmup")]
    no_warmup: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bert-serve: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let backend = args.backend.parse::<BackendKind>()?;
    let device = backend.device()?;
    let (model, dataset, revision) = (
        args.model.clone(),
        args.dataset_name.clone(),
        args.revision.clone(),
    );
    let options = ModelOptions {
        max_input_length: args.max_input_length,
        precision: args.dtype.parse::<Precision>()?,
        pad_multiple: backend.pad_multiple(args.pad_to_multiple_of),
    };
    let model = tokio::task::spawn_blocking(move || -> Result<Model> {
        let dir = ModelSource::pretrained_dir(&model, &dataset, revision)?;
        Model::load(&dir, &device, options)
    })
    .await
    .context("loading the model")??;
    let max_input_length = model.max_seq_length();
    ensure!(
        args.max_batch_tokens >= max_input_length,
        "--max-batch-tokens ({}) must hold one input of --max-input-length ({max_input_length})",
        args.max_batch_tokens
    );
    ensure!(
        args.max_batch_requests != Some(0),
        "--max-batch-requests must be at least 1"
    );
    ensure!(
        args.max_client_batch_size >= 1,
        "--max-client-batch-size must be at least 1"
    );
    ensure!(
        args.max_concurrent_requests >= 1,
        "--max-concurrent-requests must be at least 1"
    );
    let warm_up = if args.warmup || args.no_warmup {
        args.warmup
    } else {
        backend != BackendKind::Cpu
    };
    if warm_up {
        let started = std::time::Instant::now();
        let (model, tokens) = (model.clone(), args.max_batch_tokens);
        let batches =
            tokio::task::spawn_blocking(move || model.warm_up(tokens, options.pad_multiple))
                .await
                .context("warming up")??;
        eprintln!(
            "bert-serve: warmed up with {batches} batches in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let limits = Limits {
        max_batch_tokens: args.max_batch_tokens,
        max_batch_inputs: match args.max_batch_requests {
            Some(n) => n,
            None if backend == BackendKind::Cpu => 32,
            None => usize::MAX,
        },
        max_concurrent_requests: args.max_concurrent_requests,
        max_client_batch_size: args.max_client_batch_size,
        max_input_length,
    };
    let address = format!("{}:{}", args.hostname, args.port);
    let server = Server::bind(
        model,
        args.model.clone(),
        backend.to_string(),
        limits,
        &address,
    )
    .await?;
    eprintln!(
        "bert-serve: {} on {backend}, listening on http://{}",
        args.model,
        server.local_addr()?
    );
    server.run(shutdown_signal()).await?;
    eprintln!("bert-serve: stopped");
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    eprintln!("bert-serve: stopping: answering the requests in flight");
}
