//! Which rayon pool each level of a chain computes on, and pipespec's core lending.

use std::sync::Arc;

use rayon::ThreadPool;

use crate::chain::LevelKind;
use crate::error::{DecodeError, Result};

/// How a chain's levels get their cores.
#[derive(Clone)]
pub enum Cores {
    /// Every level on one pool: levels that take turns (`ar`, `sd`, `staged`, `lookup`), or the
    /// server's slots, which share the machine's cores.
    Shared(Arc<ThreadPool>),
    /// One pool per level (`pipespec`, whose levels compute at once), kept strictly.
    PerLevel(Vec<Arc<ThreadPool>>),
    /// One pool per level, and `wide`, a pool of all the model levels' threads that a model level
    /// runs on while the others are parked (`pipespec`'s core lending).
    Lending {
        pools: Vec<Arc<ThreadPool>>,
        wide: Arc<ThreadPool>,
    },
}

impl Cores {
    /// `pipespec`'s cores for a chain of `kinds`: each model level gets its own pool of
    /// `threads` (one count per model level, kept strictly; or one total, or none for every
    /// core, split evenly with the remainder to the levels nearest the target). With a total and
    /// two model levels or more, idle levels lend their cores. An n-gram level computes nothing:
    /// its slot holds a 1-thread pool.
    pub fn per_level(kinds: &[LevelKind], threads: &[usize]) -> Result<Cores> {
        let budgets = split_threads(kinds, threads)?;
        let pools: Vec<Arc<ThreadPool>> = budgets
            .iter()
            .map(|&budget| thread_pool(Some(budget.max(1))))
            .collect::<Result<_>>()?;
        let models = kinds.iter().filter(|&&k| k == LevelKind::Model).count();
        if threads.len() > 1 || models < 2 {
            return Ok(Cores::PerLevel(pools));
        }
        let total = budgets.iter().sum();
        Ok(Cores::Lending {
            pools,
            wide: thread_pool(Some(total))?,
        })
    }

    /// The pool level `index` computes on by default.
    pub fn pool(&self, index: usize) -> &Arc<ThreadPool> {
        match self {
            Cores::Shared(pool) => pool,
            Cores::PerLevel(pools) | Cores::Lending { pools, .. } => &pools[index],
        }
    }

    /// The pool model levels may borrow, when cores are lent.
    pub fn lending_pool(&self) -> Option<&Arc<ThreadPool>> {
        match self {
            Cores::Lending { wide, .. } => Some(wide),
            _ => None,
        }
    }

    pub fn lends(&self) -> bool {
        matches!(self, Cores::Lending { .. })
    }

    /// Fails unless there is one pool per level of a chain of `levels`.
    pub(crate) fn check(&self, levels: usize) -> Result<()> {
        match self {
            Cores::Shared(_) => Ok(()),
            Cores::PerLevel(pools) | Cores::Lending { pools, .. } if pools.len() == levels => {
                Ok(())
            }
            Cores::PerLevel(pools) | Cores::Lending { pools, .. } => {
                Err(DecodeError::InvalidParameter {
                    name: "compute pools",
                    bounds: "one per level",
                    value: format!("{} pools for {levels} levels", pools.len()),
                })
            }
        }
    }
}

/// Each level's thread count for `Cores::per_level` (0 for n-gram levels).
pub fn split_threads(kinds: &[LevelKind], threads: &[usize]) -> Result<Vec<usize>> {
    let models = kinds.iter().filter(|&&k| k == LevelKind::Model).count();
    if threads.contains(&0) {
        return Err(DecodeError::InvalidParameter {
            name: "threads",
            bounds: "at least 1 per level",
            value: "0".into(),
        });
    }
    let budgets: Vec<usize> = match threads {
        [] | [_] => {
            let total = match threads {
                [n] => *n,
                _ => available_cores(),
            };
            (0..models)
                .map(|i| (total / models + usize::from(models - i <= total % models)).max(1))
                .collect()
        }
        list if list.len() == models => list.to_vec(),
        list => {
            return Err(DecodeError::InvalidParameter {
                name: "threads",
                bounds: "one count, or one per model level",
                value: format!("{} counts for {models} model levels", list.len()),
            })
        }
    };
    let mut budgets = budgets.into_iter();
    Ok(kinds
        .iter()
        .map(|kind| match kind {
            LevelKind::Ngram => 0,
            LevelKind::Model => budgets.next().unwrap_or(1),
        })
        .collect())
}

/// A pool of `threads` workers (every core when None).
pub fn thread_pool(threads: Option<usize>) -> Result<Arc<ThreadPool>> {
    let count = match threads {
        Some(0) => {
            return Err(DecodeError::InvalidParameter {
                name: "threads",
                bounds: "at least 1",
                value: "0".into(),
            })
        }
        Some(n) => n,
        None => available_cores(),
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(count)
        .thread_name(|i| format!("pipespec-compute-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|error| DecodeError::ThreadPool {
            threads: count,
            reason: error.to_string(),
        })
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
