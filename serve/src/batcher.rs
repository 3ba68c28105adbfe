//! Dynamic batching: requests wait in one bounded queue; one worker thread owns the model,
//! takes every request that is waiting (up to the token budget), sorts their inputs by length,
//! runs them in padded batches of at most `max_batch_tokens` tokens, and sends each request its
//! outputs in input order. A batch that fails answers its requests with the error and the
//! worker goes on with the next.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bert_model::BertEmbedding;
use bert_model::classify::{PairIds, SequenceClassifier};
use tokio::sync::{mpsc, oneshot};

use crate::api::Limits;
use crate::metrics::Metrics;

/// What one input comes back as from an embedding model: its sentence vector, and its token
/// vectors if asked for.
pub use bert_model::embed::InputVectors as Embedded;

/// The model behind the server: an encoder (`/embed`, `/embed_all`, `/v1/embeddings`) or a
/// fine-tuned classifier (`/predict`).
#[derive(Clone)]
pub enum Model {
    Embedding(Arc<BertEmbedding>),
    Classifier(Arc<SequenceClassifier>),
}

impl Model {
    /// Runs one batch of every padded length the server can be sent (multiples of
    /// `pad_multiple` up to the input limit), at batch 1 and at the most rows the token budget
    /// allows (at most 32): GPU backends compile and tune kernels per shape, so the first
    /// requests do not wait for that. Returns the number of batches run.
    pub fn warm_up(&self, max_batch_tokens: usize, pad_multiple: usize) -> Result<usize> {
        let max_len = self.max_seq_length();
        // Unpadded batches (the CPU) have a shape per length: there only the longest is run.
        let mut lengths: Vec<usize> = if pad_multiple > 1 {
            (pad_multiple..max_len)
                .step_by(pad_multiple)
                .filter(|&n| n >= 3)
                .collect()
        } else {
            Vec::new()
        };
        lengths.push(max_len);
        let mut batches = 0;
        for len in lengths {
            let input = PairIds {
                ids: vec![WARM_UP_TOKEN; len],
                segments: vec![0; len],
            };
            let most = (max_batch_tokens / len).clamp(1, 32);
            for rows in [1, most] {
                let inputs: Vec<&PairIds> = vec![&input; rows];
                self.run(&inputs, false)?;
                batches += 1;
            }
        }
        Ok(batches)
    }

    /// One padded batch. `with_tokens`: keep the token vectors (embedding models).
    fn run(&self, inputs: &[&PairIds], with_tokens: bool) -> Result<Vec<Output>> {
        match self {
            Self::Embedding(embedder) => {
                let ids: Vec<Vec<u32>> = inputs.iter().map(|i| i.ids.clone()).collect();
                Ok(embedder
                    .embed_ids(&ids, false, with_tokens)?
                    .into_iter()
                    .map(Output::Vectors)
                    .collect())
            }
            Self::Classifier(classifier) => {
                let owned: Vec<PairIds> = inputs.iter().map(|&i| i.clone()).collect();
                Ok(classifier
                    .logits(&owned)?
                    .into_iter()
                    .map(Output::Scores)
                    .collect())
            }
        }
    }
}

/// Warm-up inputs only need the right shapes: id 0 is in every vocabulary.
const WARM_UP_TOKEN: u32 = 0;

/// What a request asks of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Embed { normalize: bool, with_tokens: bool },
    Predict,
}

/// One input's answer.
#[derive(Debug, Clone)]
pub enum Output {
    Vectors(Embedded),
    /// The classifier head's raw outputs (logits, or the regression value).
    Scores(Vec<f32>),
}

/// One request's work: tokenized inputs and where the answer goes.
pub struct Job {
    pub inputs: Vec<PairIds>,
    pub task: Task,
    pub reply: oneshot::Sender<Result<Vec<Output>, String>>,
    pub queued: Instant,
}

impl Job {
    fn tokens(&self) -> usize {
        self.inputs.iter().map(|i| i.ids.len()).sum()
    }
}

/// Why a job was not queued.
#[derive(Debug)]
pub enum Refused {
    /// `--max-concurrent-requests` requests are waiting already.
    QueueFull,
    /// The worker has stopped (the server is shutting down).
    Stopped,
}

/// The queue's sending end, shared by the request handlers.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Start the worker thread that owns `model`.
    /// `limits.max_concurrent_requests` may wait; passes are bounded as `limits` says.
    pub fn start(
        model: Model,
        limits: &Limits,
        metrics: Arc<Metrics>,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (queue, waiting) = mpsc::channel(limits.max_concurrent_requests.max(1));
        let bounds = BatchBounds {
            tokens: limits.max_batch_tokens,
            inputs: limits.max_batch_inputs.max(1),
        };
        let worker = std::thread::Builder::new()
            .name("bert-serve-batcher".into())
            .spawn(move || run(waiting, &model, bounds, &metrics))
            .expect("a thread for the batcher");
        (Self { queue }, worker)
    }

    /// Queue `job` without waiting: a full queue is refused (429), not awaited.
    pub fn submit(&self, job: Job) -> Result<(), Refused> {
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Refused::Stopped,
        })
    }
}

/// What one forward pass may hold: padded tokens, and inputs.
#[derive(Clone, Copy)]
struct BatchBounds {
    tokens: usize,
    inputs: usize,
}

/// The worker: until every sender is gone, take what is waiting and run it.
fn run(mut waiting: mpsc::Receiver<Job>, model: &Model, bounds: BatchBounds, metrics: &Metrics) {
    let max_batch_tokens = bounds.tokens;
    let mut next: Option<Job> = None;
    let mut last_batch = Duration::ZERO;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match waiting.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        // Everything waiting now, up to the budget; the job that does not fit starts the next.
        let mut jobs = vec![first];
        let mut tokens = jobs[0].tokens();
        let mut take = |job: Job, jobs: &mut Vec<Job>, next: &mut Option<Job>| {
            if tokens + job.tokens() > max_batch_tokens {
                *next = Some(job);
            } else {
                tokens += job.tokens();
                jobs.push(job);
            }
        };
        while next.is_none()
            && let Ok(job) = waiting.try_recv()
        {
            take(job, &mut jobs, &mut next);
        }
        // Requests arrived while the last batch ran: others are on their way. On a machine
        // whose cores the encoder fills, the HTTP side gets little time while a batch runs, so
        // collect for a moment longer (while they keep coming, at most a quarter of the last
        // batch's time) rather than start a batch of the few that made it in. A lone client
        // finds the queue empty and never waits here.
        if jobs.len() > 1 && next.is_none() {
            let window = (last_batch / 4).min(MAX_COLLECT);
            let started = Instant::now();
            let mut quiet_since = Instant::now();
            while next.is_none() && started.elapsed() < window && quiet_since.elapsed() < QUIET {
                match waiting.try_recv() {
                    Ok(job) => {
                        take(job, &mut jobs, &mut next);
                        quiet_since = Instant::now();
                    }
                    Err(_) => std::thread::sleep(Duration::from_micros(200)),
                }
            }
        }
        let started = Instant::now();
        run_jobs(jobs, model, bounds, metrics);
        last_batch = started.elapsed();
    }
}

/// The longest the worker collects requests beyond those already waiting.
const MAX_COLLECT: Duration = Duration::from_millis(20);
/// Collecting stops once no request has come for this long.
const QUIET: Duration = Duration::from_millis(2);

/// Run `jobs` in padded batches within `bounds` and answer each.
fn run_jobs(jobs: Vec<Job>, model: &Model, bounds: BatchBounds, metrics: &Metrics) {
    let started = Instant::now();
    for job in &jobs {
        metrics.queue_time(started.duration_since(job.queued));
    }
    // Every input as (job, index in job), longest first: similar lengths pad little.
    let mut order: Vec<(usize, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| (0..job.inputs.len()).map(move |i| (j, i)))
        .collect();
    let length = |(j, i): (usize, usize)| jobs[j].inputs[i].ids.len();
    order.sort_by_key(|&ji| std::cmp::Reverse(length(ji)));
    let mut results: Vec<Vec<Option<Output>>> =
        jobs.iter().map(|j| vec![None; j.inputs.len()]).collect();
    let mut failed: Vec<Option<String>> = vec![None; jobs.len()];

    let mut start = 0;
    while start < order.len() {
        // Sorted longest first: the first input sets the padded length of the batch.
        let longest = length(order[start]).max(1);
        // Cutting at `bounds.inputs` also keeps lengths alike: the inputs are sorted.
        let fit = (bounds.tokens / longest).clamp(1, bounds.inputs);
        let end = (start + fit).min(order.len());
        let batch = &order[start..end];
        // Jobs of one batch may differ in `normalize` and `with_tokens`: compute what any
        // asks for and shape per job afterwards.
        let inputs: Vec<&PairIds> = batch.iter().map(|&(j, i)| &jobs[j].inputs[i]).collect();
        let with_tokens = batch.iter().any(|&(j, _)| {
            matches!(
                jobs[j].task,
                Task::Embed {
                    with_tokens: true,
                    ..
                }
            )
        });
        let inference = Instant::now();
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| model.run(&inputs, with_tokens)));
        metrics.batch(
            batch.len(),
            inputs.iter().map(|i| i.ids.len()).sum(),
            inference.elapsed(),
        );
        match outcome {
            Ok(Ok(rows)) => {
                for (&(j, i), output) in batch.iter().zip(rows) {
                    results[j][i] = Some(shaped(output, jobs[j].task));
                }
            }
            Ok(Err(e)) => fail(batch, &mut failed, format!("inference failed: {e:#}")),
            Err(_) => fail(
                batch,
                &mut failed,
                "inference failed (the encoder panicked)".into(),
            ),
        }
        start = end;
    }
    for ((job, rows), failure) in jobs.into_iter().zip(results).zip(failed) {
        let answer = match failure {
            Some(e) => Err(e),
            None => Ok(rows
                .into_iter()
                .map(|r| r.expect("every input ran"))
                .collect()),
        };
        // The client may have gone away: nothing to do then.
        let _ = job.reply.send(answer);
    }
    metrics.busy(started.elapsed());
}

/// An output as its job asked: normalised or not, token vectors kept or dropped.
fn shaped(output: Output, task: Task) -> Output {
    match (output, task) {
        (
            Output::Vectors(Embedded { sentence, tokens }),
            Task::Embed {
                normalize,
                with_tokens,
            },
        ) => Output::Vectors(Embedded {
            sentence: if normalize {
                l2_normalized(sentence)
            } else {
                sentence
            },
            tokens: if with_tokens { tokens } else { Vec::new() },
        }),
        (output, _) => output,
    }
}

fn fail(batch: &[(usize, usize)], failed: &mut [Option<String>], message: String) {
    for &(j, _) in batch {
        failed[j].get_or_insert_with(|| message.clone());
    }
}

fn l2_normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// How long a request may wait for its answer before the handler gives up (the worker still
/// finishes it).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);
