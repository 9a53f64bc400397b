//! Load test: N concurrent streaming chat clients against a running server, reporting throughput, time to first token and inter-token latency, and checking that every stream completed with its full token count.
//!
//! `cargo run --release -p pipespec-server --example load -- http://127.0.0.1:8080 64 64 [STRATEGY]`
//! (server URL, clients, tokens per client, and a pipespec strategy to ask for; llama-server
//! ignores the field, so the same command measures both). Tokens are the usage the server
//! reports, or the content chunks when it reports none.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;

struct ClientResult {
    ttft: Duration,
    gaps: Vec<Duration>,
    completion_tokens: u64,
    /// The strategy the server reports it ran (`usage.pipespec.strategy`), if any.
    strategy: Option<String>,
    done: bool,
}

fn run_client(
    url: &str,
    index: usize,
    max_tokens: usize,
    strategy: Option<&str>,
) -> Result<ClientResult, String> {
    let mut body = serde_json::json!({
        "messages": [{"role": "user", "content": format!("Tell me a story about the number {index}.")}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": true,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(strategy) = strategy {
        body["strategy"] = strategy.into();
    }
    let start = Instant::now();
    let response = ureq::post(&format!("{url}/v1/chat/completions"))
        .timeout(Duration::from_secs(600))
        .send_string(&body.to_string())
        .map_err(|e| format!("client {index}: {e}"))?;
    let mut result = ClientResult {
        ttft: Duration::ZERO,
        gaps: Vec::new(),
        completion_tokens: 0,
        strategy: None,
        done: false,
    };
    let mut last: Option<Instant> = None;
    let mut chunks = 0;
    for line in BufReader::new(response.into_reader()).lines() {
        let line = line.map_err(|e| format!("client {index}: {e}"))?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            result.done = true;
            break;
        }
        let value: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
        if let Some(tokens) = value["usage"]["completion_tokens"].as_u64() {
            result.completion_tokens = tokens;
        }
        if let Some(strategy) = value["usage"]["pipespec"]["strategy"].as_str() {
            result.strategy = Some(strategy.to_string());
        }
        if value["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|text| !text.is_empty())
        {
            chunks += 1;
            let now = Instant::now();
            match last {
                None => result.ttft = now - start,
                Some(previous) => result.gaps.push(now - previous),
            }
            last = Some(now);
        }
    }
    if result.completion_tokens == 0 {
        result.completion_tokens = chunks;
    }
    Ok(result)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let clients: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let max_tokens: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let strategy = args.get(4).map(String::as_str);
    let start = Instant::now();
    let results: Vec<Result<ClientResult, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|index| {
                let url = &url;
                scope.spawn(move || run_client(url, index, max_tokens, strategy))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("client panicked".into())))
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut ttfts = Vec::new();
    let mut gaps = Vec::new();
    let (mut tokens, mut complete, mut failures) = (0u64, 0usize, Vec::new());
    let mut strategies = std::collections::BTreeMap::<String, usize>::new();
    for result in results {
        match result {
            Ok(r) => {
                tokens += r.completion_tokens;
                if r.done && r.completion_tokens == max_tokens as u64 {
                    complete += 1;
                } else {
                    failures.push(format!("done={} tokens={}", r.done, r.completion_tokens));
                }
                if let Some(strategy) = r.strategy {
                    *strategies.entry(strategy).or_default() += 1;
                }
                ttfts.push(r.ttft);
                gaps.extend(r.gaps);
            }
            Err(e) => failures.push(e),
        }
    }
    ttfts.sort();
    gaps.sort();
    println!(
        "clients {clients} x {max_tokens} tokens | complete {complete}/{clients} | tokens {tokens} in {wall:.2} s = {:.1} tok/s",
        tokens as f64 / wall
    );
    println!(
        "ttft ms: p50 {:.0} p99 {:.0} | inter-token ms: p50 {:.1} p99 {:.1}",
        percentile(&ttfts, 50.0),
        percentile(&ttfts, 99.0),
        percentile(&gaps, 50.0),
        percentile(&gaps, 99.0)
    );
    if !strategies.is_empty() {
        let ran: Vec<String> = strategies
            .iter()
            .map(|(strategy, count)| format!("{strategy} {count}"))
            .collect();
        println!("strategies run: {}", ran.join(", "));
    }
    for failure in &failures {
        println!("failed: {failure}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
