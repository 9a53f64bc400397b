//! Admission and the request threads: a bounded queue of jobs, admitted in arrival order while
//! their KV caches fit the token budget; each admitted job runs on a worker thread whose levels'
//! passes join the batch engine's steps, so every running request shares each forward pass.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use pipespec_decode::{BatchConfig, BatchEngine};

use crate::admission::{kv_positions, Admitted, IdleChain, Queue};
use crate::errors::{ApiError, ErrorKind};
use crate::job::Job;
use crate::metrics::Metrics;
use crate::policy::{BatchSize, Policy};
use crate::state::Engine;
use crate::worker;

/// How the scheduler admits and batches.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests decoded at once (worker threads, sequences in a step at most).
    pub max_concurrent: usize,
    /// Requests that may wait beyond those running; more are refused with 429.
    pub queue_capacity: usize,
    /// KV positions all running requests may hold together (each level of a request holds
    /// its own cache of that many positions).
    pub kv_positions: usize,
    pub batch: BatchConfig,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    limits: Limits,
    metrics: Arc<Metrics>,
    policy: Arc<Policy>,
    /// `Queue::running`, readable without the lock (the policy asks every round).
    running: AtomicUsize,
}

/// The queue, the worker threads and the batch engine they share.
pub struct Scheduler {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    engine: Arc<Engine>,
}

impl Scheduler {
    /// Starts the batch engine on the chain's pool and `limits.max_concurrent` workers.
    pub fn start(
        engine: Arc<Engine>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Result<Scheduler, ApiError> {
        let policy = Arc::new(Policy::new(engine.chain.specs()));
        let (observed, calibrated) = (metrics.clone(), policy.clone());
        let batch = BatchEngine::start(
            engine.chain.compute_pool(),
            limits.batch,
            Some(Box::new(move |model, step| {
                observed.batch.record_step(step);
                calibrated.observe_pass(model, step);
            })),
        )?;
        let batch = Arc::new(batch);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            limits,
            metrics: metrics.clone(),
            policy,
            running: AtomicUsize::new(0),
        });
        metrics.slots.set(limits.max_concurrent as u64);
        metrics
            .batch
            .kv_budget_bytes
            .set(engine.chain.cache_bytes_at(limits.kv_positions) as u64);
        let mut workers = Vec::with_capacity(limits.max_concurrent);
        for index in 0..limits.max_concurrent.max(1) {
            let (engine, shared, batch) = (engine.clone(), shared.clone(), batch.clone());
            let handle = std::thread::Builder::new()
                .name(format!("pipespec-request-{index}"))
                .spawn(move || run_worker(&engine, &batch, &shared))
                .map_err(|e| ApiError::internal(format!("starting worker {index}: {e}")))?;
            workers.push(handle);
        }
        Ok(Scheduler {
            shared,
            workers: Mutex::new(workers),
            engine,
        })
    }

    /// Queues a job: refused with 400 when its KV cache could never fit the budget, 429 when
    /// the queue is full, 503 once shutdown began.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        let budget = self.shared.limits.kv_positions;
        let positions = kv_positions(&job, self.engine.chain.capacity());
        if positions > budget {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "the request needs {positions} KV cache positions (prompt {} + max_tokens {} + window {} + 1) but the server holds {budget} for all requests (--kv-tokens): lower max_tokens or shorten the prompt",
                    job.prompt.len(),
                    job.config.max_tokens,
                    job.speculation.window
                ),
            )
            .with_code("kv_budget_exceeded"));
        }
        let mut queue = lock(&self.shared.queue);
        if queue.closed {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "the server is shutting down",
            ));
        }
        if queue.jobs.len() >= self.shared.limits.queue_capacity {
            return Err(ApiError::new(
                ErrorKind::Overloaded,
                format!(
                    "the server is busy: {} requests are already waiting (--queue {}); retry later",
                    queue.jobs.len(),
                    self.shared.limits.queue_capacity
                ),
            )
            .with_code("queue_full"));
        }
        queue.jobs.push_back(job);
        self.shared.metrics.queue_depth.set(queue.jobs.len() as u64);
        drop(queue);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Refuses new jobs, lets the workers finish the queued and running ones, and joins them.
    pub fn shutdown(&self) {
        lock(&self.shared.queue).closed = true;
        self.shared.changed.notify_all();
        let workers = std::mem::take(&mut *lock(&self.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A worker's loop: admit the oldest job once its KV cache fits, run it, release the cache,
/// until the queue is closed and empty.
fn run_worker(engine: &Engine, batch: &BatchEngine, shared: &Arc<Shared>) {
    let capacity = engine.chain.capacity();
    let load = shared.clone();
    let batch_size: BatchSize = Arc::new(move || {
        let waiting = load.metrics.queue_depth.get() as usize;
        (load.running.load(Ordering::Relaxed) + waiting).min(load.limits.max_concurrent)
    });
    loop {
        let admitted = {
            let mut queue = lock(&shared.queue);
            loop {
                let limits = &shared.limits;
                let admitted = queue.admit(capacity, limits.kv_positions, limits.max_concurrent);
                shared.metrics.queue_depth.set(queue.jobs.len() as u64);
                if let Some(admitted) = admitted {
                    shared.running.store(queue.running, Ordering::Relaxed);
                    break admitted;
                }
                if queue.closed && queue.jobs.is_empty() {
                    return;
                }
                queue = shared
                    .changed
                    .wait(queue)
                    .unwrap_or_else(|e| e.into_inner());
            }
        };
        let Admitted {
            mut job,
            positions,
            reused,
            sequences,
        } = admitted;
        shared.metrics.batch.record_admission(
            engine.chain.cache_bytes_at(lock(&shared.queue).reserved),
            reused.is_some(),
        );
        shared.metrics.in_flight.inc();
        shared.policy.fit_job(
            &mut job,
            sequences,
            batch_size.clone(),
            shared.metrics.clone(),
        );
        let caches = reused.map(|chain| chain.caches).unwrap_or_default();
        let adapted = job
            .adapter
            .clone()
            .map(|lora| engine.chain.with_target_lora(Some(lora)));
        let chain = adapted.as_ref().unwrap_or(&engine.chain);
        let kept = match chain.build_batched_from(batch, positions, caches) {
            Ok(mut levels) => {
                worker::run(&mut levels, engine, job, &shared.metrics, &shared.policy);
                Some(IdleChain {
                    caches: levels.into_iter().map(|level| level.into_cache()).collect(),
                    positions,
                })
            }
            Err(error) => {
                let _ = job.events.send(crate::job::Event::Failed(error.into()));
                None
            }
        };
        shared.metrics.in_flight.dec();
        let mut queue = lock(&shared.queue);
        queue.release(positions, kept, shared.limits.max_concurrent);
        shared.running.store(queue.running, Ordering::Relaxed);
        shared
            .metrics
            .batch
            .kv_reserved_bytes
            .set(engine.chain.cache_bytes_at(queue.reserved) as u64);
        drop(queue);
        shared.changed.notify_all();
    }
}
