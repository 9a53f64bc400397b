//! Admission: arrival order, the KV budget, idle caches reused by prefix and evicted for room.

use std::time::Instant;

use pipespec_decode::{GenerationConfig, SamplingParams, SpeculationConfig, Strategy};
use tokio::sync::mpsc;

use super::{IdleChain, Queue};
use crate::job::{Event, Job};

/// A job of `prompt` for `max_tokens` (window 1: it needs prompt + max_tokens + 2 positions),
/// with the receiver that keeps its client connected.
fn job(prompt: &[u32], max_tokens: usize) -> (Job, mpsc::UnboundedReceiver<Event>) {
    let (events, receiver) = mpsc::unbounded_channel();
    let job = Job {
        prompt: prompt.to_vec(),
        config: GenerationConfig {
            max_tokens,
            sampling: SamplingParams::greedy(),
            seed: 0,
            stop_ids: Vec::new(),
            ignore_eos: false,
        },
        strategy: Strategy::Ar,
        policy_may_choose: false,
        speculation: SpeculationConfig::with_window(1),
        stop: Vec::new(),
        arrived: Instant::now(),
        events,
        adapter: None,
    };
    (job, receiver)
}

/// An idle chain without caches whose target "held" nothing, of `positions` positions.
fn idle(positions: usize) -> IdleChain {
    IdleChain {
        caches: Vec::new(),
        positions,
    }
}

#[test]
fn jobs_enter_in_order_while_they_fit_and_idle_chains_make_room() {
    let mut queue = Queue::default();
    let (a, _ka) = job(&[1, 2, 3], 7); // 12 positions
    let (b, _kb) = job(&[4; 30], 8); // 40 positions
    queue.jobs.extend([a, b]);
    let first = queue.admit(256, 50, 4).unwrap();
    assert_eq!((first.positions, queue.reserved), (12, 12));
    // 12 + 40 > 50: the second waits for room
    assert!(queue.admit(256, 50, 4).is_none());
    // the first ends; its caches stay idle, still reserved, and too small for the second:
    // they are evicted to make room
    queue.release(first.positions, Some(idle(12)), 4);
    assert_eq!((queue.reserved, queue.idle.len()), (12, 1));
    let second = queue.admit(256, 50, 4).unwrap();
    assert!(second.reused.is_none());
    assert_eq!((queue.reserved, queue.idle.len()), (40, 0));
    // a job whose client left is dropped on the way
    let (gone, receiver) = job(&[9], 1);
    drop(receiver);
    queue.jobs.push_back(gone);
    assert!(queue.admit(256, 50, 4).is_none());
    assert!(queue.jobs.is_empty());
}

#[test]
fn an_idle_chain_big_enough_is_reused_without_a_new_reservation() {
    let mut queue = Queue {
        reserved: 100,
        ..Queue::default()
    };
    queue.idle.extend([idle(60), idle(40)]);
    let (small, _keep) = job(&[1, 2], 10); // 14 positions
    queue.jobs.push_back(small);
    let admitted = queue.admit(256, 100, 4).unwrap();
    // both hold room and share no prefix: the newer one is taken, whole
    assert_eq!(admitted.positions, 40);
    assert!(admitted.reused.is_some());
    assert_eq!(
        (queue.reserved, queue.idle.len(), queue.running),
        (100, 1, 1)
    );
    queue.release(admitted.positions, None, 4);
    assert_eq!((queue.reserved, queue.running), (60, 0));
}
