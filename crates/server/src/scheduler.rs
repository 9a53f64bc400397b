//! A bounded queue of generation jobs served by one OS thread per slot; results flow back to the async side over channels.
//!
//! Each worker owns one slot (its KV caches) and runs one job at a time. Batching several jobs
//! into one forward pass would replace the per-slot workers with one that takes several jobs
//! from the same queue; the job and event types (`job`) and the queue stay as they are.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::errors::{ApiError, ErrorKind};
use crate::job::Job;
use crate::metrics::Metrics;
use crate::state::{Engine, Slot};
use crate::worker;

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    metrics: Arc<Metrics>,
}

/// The queue and the slot workers.
pub struct Scheduler {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Scheduler {
    /// Builds `slots` slots of `engine` and starts a worker thread for each.
    pub fn start(
        engine: Arc<Engine>,
        slots: usize,
        queue_capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Scheduler, ApiError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: queue_capacity,
            metrics: metrics.clone(),
        });
        let mut workers = Vec::with_capacity(slots);
        for index in 0..slots.max(1) {
            let slot = engine.new_slot(index)?;
            metrics.slot_cache_bytes.set(slot.cache_bytes as u64);
            let (engine, shared) = (engine.clone(), shared.clone());
            let handle = std::thread::Builder::new()
                .name(format!("pipespec-slot-{index}"))
                .spawn(move || run_worker(slot, &engine, &shared))
                .map_err(|e| ApiError::internal(format!("starting slot worker {index}: {e}")))?;
            workers.push(handle);
        }
        metrics.slots.set(workers.len() as u64);
        Ok(Scheduler {
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// Queues a job; refused with 429 when the queue is full, 503 once shutdown began.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        let mut queue = lock(&self.shared.queue);
        if queue.closed {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "the server is shutting down",
            ));
        }
        if queue.jobs.len() >= self.shared.capacity {
            return Err(ApiError::new(
                ErrorKind::Overloaded,
                format!(
                    "the server is busy: {} requests are already waiting (--queue {}); retry later",
                    queue.jobs.len(),
                    self.shared.capacity
                ),
            )
            .with_code("queue_full"));
        }
        queue.jobs.push_back(job);
        self.shared.metrics.queue_depth.set(queue.jobs.len() as u64);
        drop(queue);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Refuses new jobs, lets the workers finish the queued and running ones, and joins them.
    pub fn shutdown(&self) {
        lock(&self.shared.queue).closed = true;
        self.shared.ready.notify_all();
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

/// A slot's loop: take the next job, run it, until the queue is closed and empty.
fn run_worker(mut slot: Slot, engine: &Engine, shared: &Shared) {
    loop {
        let job = {
            let mut queue = lock(&shared.queue);
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    shared.metrics.queue_depth.set(queue.jobs.len() as u64);
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        if job.events.is_closed() {
            // The client left while the job waited.
            continue;
        }
        shared.metrics.in_flight.inc();
        worker::run(&mut slot, engine, job, &shared.metrics);
        shared.metrics.in_flight.dec();
    }
}
