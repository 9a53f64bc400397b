//! Runs one job on its levels: the strategy's token callback decodes text, applies stop sequences, times tokens and notices a client that went away.

use std::time::Instant;

use pipespec_decode::FinishReason;
use pipespec_model::tokenizer::OwnedStreamDecoder;

use crate::errors::ApiError;
use crate::job::{Event, Job, Summary};
use crate::metrics::Metrics;
use crate::policy::Policy;
use pipespec_decode::Level;

use crate::state::Engine;
use crate::stop::StopMatcher;

/// Generates `job` on `levels`, sending its text and outcome on `job.events`.
pub fn run(
    levels: &mut [Box<dyn Level>],
    engine: &Engine,
    job: Job,
    metrics: &Metrics,
    policy: &Policy,
) {
    let started = Instant::now();
    let queue_s = started.duration_since(job.arrived).as_secs_f64();
    metrics.queue_wait.observe(queue_s);
    let mut decoder = OwnedStreamDecoder::new(engine.tokenizer.clone());
    let mut stops = StopMatcher::new(job.stop.clone());
    let mut hit_stop = false;
    let mut decode_error = None;
    let mut first_token: Option<Instant> = None;
    let mut last_token: Option<Instant> = None;
    let events = &job.events;
    let result = job.strategy.generate(
        levels,
        &job.prompt,
        &job.config,
        &job.speculation,
        &mut |token| {
            let now = Instant::now();
            match last_token {
                None => {
                    first_token = Some(now);
                    metrics
                        .time_to_first_token
                        .observe(now.duration_since(job.arrived).as_secs_f64());
                }
                Some(last) => metrics
                    .inter_token
                    .observe(now.duration_since(last).as_secs_f64()),
            }
            last_token = Some(now);
            let piece = match decoder.push(token) {
                Ok(piece) => piece,
                Err(e) => {
                    decode_error = Some(ApiError::internal(format!("decoding token {token}: {e}")));
                    return false;
                }
            };
            let (text, stopped) = stops.push(&piece);
            if !text.is_empty() && events.send(Event::Text(text)).is_err() {
                return false;
            }
            if stopped {
                hit_stop = true;
                return false;
            }
            // A closed channel means the client disconnected: cancel and free the KV cache.
            !events.is_closed()
        },
    );
    let output = match (result, decode_error) {
        (_, Some(error)) => {
            let _ = events.send(Event::Failed(error));
            return;
        }
        (Err(error), None) => {
            let _ = events.send(Event::Failed(error.into()));
            return;
        }
        (Ok(output), None) => output,
    };
    let generation = &output.generation;
    let finish_reason = if hit_stop {
        "stop"
    } else {
        if generation.finish_reason != FinishReason::Cancelled {
            let (text, _) = stops.push(&decoder.finish());
            let rest = text + &stops.finish();
            if !rest.is_empty() {
                let _ = events.send(Event::Text(rest));
            }
        }
        generation.finish_reason.as_str()
    };
    let wall_s = job.arrived.elapsed().as_secs_f64();
    metrics.request_duration.observe(wall_s);
    policy.observe_generation(job.strategy, &output.levels);
    metrics.record_generation(
        finish_reason,
        generation.prompt_tokens,
        generation.tokens.len(),
        &output.levels,
    );
    let summary = Summary {
        prompt_tokens: generation.prompt_tokens,
        completion_tokens: generation.tokens.len(),
        finish_reason,
        strategy: job.strategy,
        window: job.speculation.window,
        levels: output.levels,
        queue_s,
        ttft_s: first_token.map_or(wall_s, |t| t.duration_since(job.arrived).as_secs_f64()),
        wall_s,
    };
    let _ = events.send(Event::Done(summary));
}
