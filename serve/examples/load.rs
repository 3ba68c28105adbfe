//! A small closed-loop load generator for `bert-serve` (BENCHMARKS.md): C clients, each sending
//! one request after the other (one SST-2 sentence per request by default) until N requests are
//! answered; prints throughput and latency percentiles.
//!
//!     cargo run --release -p bert-serve --example load -- --url http://127.0.0.1:8080 \
//!         --clients 64 --requests 2000 [--route /embed] [--inputs-per-request 1]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests in all (the first `--warmup` are not timed).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    #[arg(long, default_value_t = 64)]
    warmup: usize,
    #[arg(long, default_value = "/embed")]
    route: String,
    #[arg(long, default_value_t = 1)]
    inputs_per_request: usize,
    /// Sentences: a TSV's first column.
    #[arg(long, default_value = "../shared/data/glue/SST-2/dev.tsv")]
    tsv: std::path::PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.tsv)
        .with_context(|| format!("reading {}", args.tsv.display()))?;
    let sentences: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect();
    if sentences.is_empty() {
        bail!("no sentences in {}", args.tsv.display());
    }
    let url = format!("{}{}", args.url.trim_end_matches('/'), args.route);
    let body = |r: usize| {
        let inputs: Vec<&str> = (0..args.inputs_per_request)
            .map(|k| sentences[(r * args.inputs_per_request + k) % sentences.len()].as_str())
            .collect();
        if args.route.contains("v1/") {
            json!({ "input": inputs }).to_string()
        } else {
            json!({ "inputs": inputs, "truncate": true }).to_string()
        }
    };
    let send = |agent: &ureq::Agent, r: usize| -> Result<Duration> {
        let start = Instant::now();
        let mut response = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body(r))
            .with_context(|| format!("POST {url}"))?;
        response.body_mut().read_to_vec()?;
        Ok(start.elapsed())
    };

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    for r in 0..args.warmup {
        send(&agent, r)?;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| -> Result<Vec<Duration>> {
        let handles: Vec<_> = (0..args.clients)
            .map(|_| {
                let (agent, next, send) = (agent.clone(), &next, &send);
                s.spawn(move || -> Result<Vec<Duration>> {
                    let mut mine = Vec::new();
                    loop {
                        let r = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if r >= args.requests {
                            return Ok(mine);
                        }
                        mine.push(send(&agent, r)?);
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().expect("a client thread")?);
        }
        Ok(all)
    })?;
    let wall = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "clients={} requests={} inputs/request={} route={}: {:.1} requests/s, {:.1} inputs/s; \
         latency ms p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        args.clients,
        args.requests,
        args.inputs_per_request,
        args.route,
        args.requests as f64 / wall,
        (args.requests * args.inputs_per_request) as f64 / wall,
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0)),
    );
    Ok(())
}
