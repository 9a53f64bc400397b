//! The coordination state of a pipeline: each level's published output with the distribution each token was drawn from, a stop flag, and the condition variable idle stages park on.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// The output (tokens after the prompt) a level publishes.
#[derive(Debug, Default)]
pub(crate) struct Track {
    pub tokens: Vec<u32>,
    /// One row per token: the distribution it was drawn from (its q for the level that
    /// verifies it). Empty when greedy, and freed below the committed length (never read again).
    pub rows: Vec<Vec<f32>>,
    /// Bumped whenever the tokens are replaced rather than extended (a rollback): drafts read
    /// under an older epoch are stale.
    pub epoch: u64,
}

impl Track {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Appends `tokens`, with their rows when `rows` is not empty.
    pub fn extend(&mut self, tokens: &[u32], rows: &[Vec<f32>]) {
        self.tokens.extend_from_slice(tokens);
        if rows.is_empty() {
            self.rows.resize_with(self.tokens.len(), Vec::new);
        } else {
            self.rows.extend(rows.iter().cloned());
        }
    }

    /// Takes `other`'s tokens from the first position where the two differ, unless `other` is a
    /// prefix of this track; returns whether any
    /// of this track's own tokens were dropped (a rollback, as opposed to catching up).
    pub fn adopt(&mut self, other: &Track) -> bool {
        let d = first_difference(&self.tokens, &other.tokens);
        if d == other.tokens.len() {
            // `other` is a prefix of this track: nothing to take.
            return false;
        }
        let rolled_back = d < self.tokens.len();
        self.tokens.truncate(d);
        self.rows.truncate(d);
        self.tokens.extend_from_slice(&other.tokens[d..]);
        self.rows.extend(other.rows[d..].iter().cloned());
        if rolled_back {
            self.epoch += 1;
        }
        rolled_back
    }

    /// Frees the rows of the first `committed` tokens: no level verifies them again.
    pub fn free_rows_below(&mut self, committed: usize) {
        for row in self.rows.iter_mut().take(committed).rev() {
            if row.capacity() == 0 {
                break;
            }
            *row = Vec::new();
        }
    }
}

/// The length of the common prefix of `a` and `b`.
pub(crate) fn first_difference(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Whether one of `a`, `b` is a prefix of the other.
pub(crate) fn compatible(a: &[u32], b: &[u32]) -> bool {
    first_difference(a, b) == a.len().min(b.len())
}

/// Everything the stages share, behind one mutex held only for short critical sections.
#[derive(Debug)]
pub(crate) struct Board {
    /// One track per level, smallest first; the last is the committed output.
    pub tracks: Vec<Track>,
    pub stop: bool,
    /// Per level: whether its stage is parked, waiting for a change before it can do anything.
    /// A verifier that waits for a full window of drafts stops waiting once its drafter parks.
    pub parked: Vec<bool>,
    /// Bumped on every change: a parked stage waits for it to move.
    pub version: u64,
}

pub(crate) struct Shared {
    board: Mutex<Board>,
    changed: Condvar,
}

impl Shared {
    pub fn new(levels: usize) -> Shared {
        Shared {
            board: Mutex::new(Board {
                tracks: (0..levels).map(|_| Track::default()).collect(),
                stop: false,
                parked: vec![false; levels],
                version: 0,
            }),
            changed: Condvar::new(),
        }
    }

    /// Locks the board. A stage that panicked while holding the lock leaves the board
    /// consistent enough to stop on (every other stage only reads it to stop), so a poisoned
    /// lock is recovered rather than turned into a second panic.
    pub fn lock(&self) -> MutexGuard<'_, Board> {
        self.board
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Parks until the board changes; returns the guard and the seconds spent parked.
    pub fn wait<'a>(&self, guard: MutexGuard<'a, Board>) -> (MutexGuard<'a, Board>, f64) {
        let start = Instant::now();
        let seen = guard.version;
        let guard = self
            .changed
            .wait_while(guard, |board| board.version == seen && !board.stop)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (guard, start.elapsed().as_secs_f64())
    }

    /// Records a change made under `guard` and wakes every parked stage.
    pub fn publish(&self, board: &mut Board) {
        board.version += 1;
        self.changed.notify_all();
    }

    /// Tells every stage to finish: after the current forward pass at most.
    pub fn stop(&self) {
        let mut board = self.lock();
        board.stop = true;
        self.publish(&mut board);
    }
}

/// Stops the pipeline when dropped: a stage that returns early, fails or panics never leaves the
/// others parked.
pub(crate) struct StopOnDrop<'a>(pub &'a Shared);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(tokens: &[u32]) -> Track {
        let mut track = Track::default();
        track.extend(tokens, &[]);
        track
    }

    #[test]
    fn adoption_keeps_the_common_prefix_and_counts_rollbacks() {
        let mut own = track(&[1, 2, 3, 4]);
        assert!(own.adopt(&track(&[1, 2, 9])));
        assert_eq!(own.tokens, vec![1, 2, 9]);
        assert_eq!(own.epoch, 1);
        assert!(!own.adopt(&track(&[1, 2, 9, 5])));
        assert_eq!(own.tokens, vec![1, 2, 9, 5]);
        assert_eq!(own.rows.len(), 4);
        assert!(compatible(&[1, 2], &[1, 2, 3]) && !compatible(&[1, 3], &[1, 2, 3]));
    }
}
