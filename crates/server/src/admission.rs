//! The queue's bookkeeping: jobs waiting in arrival order, the KV positions held by running
//! requests and by idle caches kept for prefix reuse, and which cache a new request gets.
//!
//! A finished request's caches stay, idle, within the budget: the next request whose prompt
//! shares a prefix with what one holds (a system prompt, an earlier turn) takes it and feeds
//! only the rest. Idle caches are evicted, oldest first, when a request needs their room.

use std::collections::VecDeque;

use pipespec_decode::CachedSequence;

use crate::job::Job;

/// The caches of a finished request's levels, idle.
pub struct IdleChain {
    /// Per level of the chain (None for a level without a cache).
    pub caches: Vec<Option<CachedSequence>>,
    /// The KV positions the caches hold room for (reserved while idle).
    pub positions: usize,
}

impl IdleChain {
    /// Tokens its target level holds.
    fn tokens(&self) -> &[u32] {
        self.caches
            .iter()
            .rev()
            .flatten()
            .next()
            .map_or(&[], |cache| &cache.tokens)
    }
}

/// A job let in: its positions reserved, and the idle caches it reuses, if any.
pub struct Admitted {
    pub job: Job,
    pub positions: usize,
    pub reused: Option<IdleChain>,
    /// Sequences decoding together once it joins (running and waiting, at most the limit).
    pub sequences: usize,
}

#[derive(Default)]
pub struct Queue {
    pub jobs: VecDeque<Job>,
    /// KV positions held by running requests and idle chains.
    pub reserved: usize,
    pub running: usize,
    /// Idle chains, oldest first.
    pub idle: VecDeque<IdleChain>,
    pub closed: bool,
}

/// KV positions `job` holds while it runs: its prompt, its tokens and a window of drafts past
/// them, at most the context size `capacity`.
pub fn kv_positions(job: &Job, capacity: usize) -> usize {
    let most = job.prompt.len() + job.config.max_tokens + job.speculation.window + 1;
    most.min(capacity)
}

impl Queue {
    /// Lets the oldest job in if its KV cache fits `budget` (reusing the idle chain that shares
    /// the longest prefix with its prompt, or evicting idle chains to make room); None while it
    /// must wait. Jobs whose client left are dropped on the way.
    pub fn admit(&mut self, capacity: usize, budget: usize, limit: usize) -> Option<Admitted> {
        loop {
            let front = self.jobs.front()?;
            if front.events.is_closed() {
                // The client left while the job waited.
                self.jobs.pop_front();
                continue;
            }
            let positions = kv_positions(front, capacity);
            let reuse = self.best_idle(&front.prompt, positions);
            let (positions, reused) = match reuse {
                Some(index) => {
                    let chain = self.idle.remove(index)?;
                    (chain.positions, Some(chain))
                }
                None => {
                    while self.reserved + positions > budget {
                        let evicted = self.idle.pop_front()?;
                        self.reserved -= evicted.positions;
                    }
                    self.reserved += positions;
                    (positions, None)
                }
            };
            let job = self.jobs.pop_front()?;
            self.running += 1;
            let sequences = (self.running + self.jobs.len()).min(limit);
            return Some(Admitted {
                job,
                positions,
                reused,
                sequences,
            });
        }
    }

    /// The idle chain with room for `positions` sharing the longest prefix with `prompt`.
    fn best_idle(&self, prompt: &[u32], positions: usize) -> Option<usize> {
        self.idle
            .iter()
            .enumerate()
            .filter(|(_, chain)| chain.positions >= positions)
            .max_by_key(|(index, chain)| {
                let shared = chain
                    .tokens()
                    .iter()
                    .zip(prompt)
                    .take_while(|(a, b)| a == b)
                    .count();
                (shared, *index)
            })
            .map(|(index, _)| index)
    }

    /// A request ended: its caches become idle (at most `keep` idle chains), or are dropped.
    pub fn release(&mut self, positions: usize, caches: Option<IdleChain>, keep: usize) {
        self.running -= 1;
        match caches {
            Some(chain) if keep > 0 => {
                self.idle.push_back(chain);
                while self.idle.len() > keep {
                    if let Some(evicted) = self.idle.pop_front() {
                        self.reserved -= evicted.positions;
                    }
                }
            }
            _ => self.reserved -= positions,
        }
    }
}

#[cfg(test)]
mod tests;
