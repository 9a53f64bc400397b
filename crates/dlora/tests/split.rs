//! A split run against local tuning on a tiny model, the cloud on loopback: the same adapter
//! bit for bit (every module active, and under Kill-and-Revive; with blocks kept on the device
//! too), the same adapter when the connection breaks mid-step, the adapter trained so far when
//! the cloud is gone for good, and Kill-and-Revive's counters against a hand count.

mod common;

use common::{data, model, TestCloud};
use pipespec_dlora::{RemoteBlocks, RemoteOptions};
use pipespec_model::lora::{LoraAdapter, LoraTarget};
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::test_support::pool;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::Model;
use pipespec_tune::kill_revive::KillReviveOptions;
use pipespec_tune::report::TuneReport;
use pipespec_tune::step::BlockRunner;
use pipespec_tune::{tune, TuneError, TuneEvent, TuneInputs, TuneOptions};
use std::sync::Arc;

fn options() -> TuneOptions {
    TuneOptions {
        rank: 4,
        alpha: 8.0,
        epochs: 2,
        learning_rate: 1e-2,
        batch: 2,
        eval_limit: 4,
        ..TuneOptions::default()
    }
}

/// Tunes, in process or through `cloud`; returns the adapter, the report and each step's
/// token count.
fn run(
    model: &Arc<Model>,
    tokenizer: &Tokenizer,
    options: &TuneOptions,
    cloud: Option<&mut dyn BlockRunner>,
) -> (LoraAdapter, TuneReport, Vec<usize>) {
    let train = data(tokenizer, 8);
    let threads = pool(2);
    let inputs = TuneInputs {
        model,
        tokenizer,
        train: &train,
        eval: Some(&train),
        pool: &threads,
    };
    let (mut tokens, mut last) = (Vec::new(), 0);
    let (adapter, report) = tune(&inputs, options, cloud, &mut |event| {
        if let TuneEvent::Step { tokens: total, .. } = event {
            tokens.push(total - last);
            last = total;
        }
    })
    .unwrap();
    (adapter, report, tokens)
}

/// Kill-and-Revive with short phases; every killed module with any signal comes back, so the
/// signals must reach the device.
fn reviving() -> KillReviveOptions {
    KillReviveOptions {
        keep: 0.3,
        warmup_steps: Some(2),
        review_steps: Some(2),
        revive_ratio: 0.0,
        ..KillReviveOptions::default()
    }
}

#[test]
fn a_split_run_equals_local_tuning_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tokenizer) = model(&SyntheticSpec::tiny(41), dir.path());
    let cloud = TestCloud::start(&model);
    for kr in [None, Some(reviving())] {
        let options = TuneOptions {
            kill_revive: kr,
            ..options()
        };
        let (local, local_report, _) = run(&model, &tokenizer, &options, None);
        let mut remote =
            RemoteBlocks::connect(RemoteOptions::new(&cloud.address), &model.config).unwrap();
        let (split, report, _) = run(&model, &tokenizer, &options, Some(&mut remote));
        remote.close().unwrap();
        assert_eq!(split.modules, local.modules, "kill-revive: {kr:?}");
        assert_eq!(report.train_loss, local_report.train_loss);
        assert_eq!(report.eval_loss_after, local_report.eval_loss_after);
        let c = &report.counters;
        assert_eq!(c.device_flops, local_report.counters.device_flops);
        assert_eq!(c.cloud_flops, local_report.counters.cloud_flops);
        assert!(c.bytes_to_cloud > 0 && c.bytes_from_cloud > 0 && c.round_trips > 0);
        assert_eq!(local_report.counters.bytes_to_cloud, 0);
        let moved = local
            .modules
            .iter()
            .filter(|m| m.b.iter().any(|&v| v != 0.0))
            .count();
        assert!(moved > 0, "training changed no module");
        if kr.is_some() {
            assert!(c.kills > 0, "nothing was killed");
            assert!(c.revivals > 0, "no revival signal reached the device");
            assert!(c.device_flops < c.device_flops_all_active);
            assert!(c.bytes_to_cloud + c.bytes_from_cloud < c.bytes_all_active);
        } else {
            assert_eq!(c.device_flops, c.device_flops_all_active);
            assert_eq!(c.bytes_to_cloud + c.bytes_from_cloud, c.bytes_all_active);
        }
    }
}

#[test]
fn blocks_kept_on_the_device_give_the_same_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        layer_count: 3,
        ..SyntheticSpec::tiny(45)
    };
    let (model, tokenizer) = model(&spec, dir.path());
    let cloud = TestCloud::start(&model);
    for kr in [None, Some(reviving())] {
        let options = TuneOptions {
            kill_revive: kr,
            ..options()
        };
        let (local, local_report, _) = run(&model, &tokenizer, &options, None);
        for device_layers in [1, 2] {
            let remote_options = RemoteOptions {
                device_layers,
                ..RemoteOptions::new(&cloud.address)
            };
            let mut remote = RemoteBlocks::connect(remote_options, &model.config).unwrap();
            let (split, report, _) = run(&model, &tokenizer, &options, Some(&mut remote));
            let at = format!("{device_layers} device layers, kill-revive {kr:?}");
            assert_eq!(split.modules, local.modules, "{at}");
            assert_eq!(report.train_loss, local_report.train_loss, "{at}");
            assert_eq!(report.eval_loss_after, local_report.eval_loss_after, "{at}");
            let (c, l) = (&report.counters, &local_report.counters);
            assert_eq!((c.kills, c.revivals), (l.kills, l.revivals), "{at}");
            // The device's blocks move their operations from the cloud to the device.
            assert!(c.device_flops > l.device_flops, "{at}");
            assert!(c.cloud_flops < l.cloud_flops, "{at}");
            assert!(c.bytes_to_cloud + c.bytes_from_cloud <= c.bytes_all_active);
        }
    }
}

#[test]
fn a_connection_broken_mid_step_gives_the_same_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tokenizer) = model(&SyntheticSpec::tiny(43), dir.path());
    let cloud = TestCloud::start(&model);
    let options = TuneOptions {
        epochs: 1,
        ..options()
    };
    let mut steady =
        RemoteBlocks::connect(RemoteOptions::new(&cloud.address), &model.config).unwrap();
    let (expected, _, _) = run(&model, &tokenizer, &options, Some(&mut steady));
    assert_eq!(steady.retried, 0);
    // Evaluation before training takes a few steps of the runner; break a training step, after
    // the cloud has sent its fifth message (the backward pass of its blocks). With a block on
    // the device, the retry must keep the device block's forward work.
    let evaluation_steps = 2;
    for device_layers in [0, 1] {
        let broken = RemoteOptions {
            break_at: Some((evaluation_steps + 1, 5)),
            device_layers,
            ..RemoteOptions::new(&cloud.address)
        };
        let mut remote = RemoteBlocks::connect(broken, &model.config).unwrap();
        let (adapter, _, _) = run(&model, &tokenizer, &options, Some(&mut remote));
        assert_eq!(remote.retried, 1, "the hook broke no connection");
        assert_eq!(
            adapter.modules, expected.modules,
            "{device_layers} device layers"
        );
    }
}

#[test]
fn a_cloud_gone_for_good_leaves_the_adapter_trained_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tokenizer) = model(&SyntheticSpec::tiny(44), dir.path());
    let cloud = TestCloud::start(&model);
    // No retries: the third training step's broken connection ends the run (two evaluation
    // steps come first).
    let broken = RemoteOptions {
        break_at: Some((2 + 2, 5)),
        retries: 0,
        ..RemoteOptions::new(&cloud.address)
    };
    let mut remote = RemoteBlocks::connect(broken, &model.config).unwrap();
    let train = data(&tokenizer, 8);
    let threads = pool(2);
    let inputs = TuneInputs {
        model: &model,
        tokenizer: &tokenizer,
        train: &train,
        eval: Some(&train),
        pool: &threads,
    };
    let outcome = tune(&inputs, &options(), Some(&mut remote), &mut |_| {});
    match outcome {
        Err(TuneError::Interrupted {
            steps,
            partial,
            cause,
        }) => {
            assert_eq!(steps, 2, "{cause}");
            assert!(cause.to_string().contains("connection"), "{cause}");
            let trained = partial
                .modules
                .iter()
                .any(|m| m.b.iter().any(|&v| v != 0.0));
            assert!(trained, "the partial adapter holds no training");
        }
        Err(other) => panic!("not an interrupted run: {other}"),
        Ok(_) => panic!("the run survived a broken connection without retries"),
    }
}

/// Operations of a rank-`r` module from `n_in` to `n_out` over `t` rows, forward and backward
/// with the input's gradient, counted by hand.
fn module_flops(t: u64, r: u64, n_in: u64, n_out: u64) -> u64 {
    let forward = 2 * t * n_in * r + 2 * t * r * n_out + t * n_out;
    let backward = t * n_out + 2 * n_out * t * r + 2 * t * n_out * r + 2 * r * t * n_in;
    forward + backward + 2 * t * r * n_in + t * n_in
}

#[test]
fn kill_revive_counters_match_a_hand_count() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        layer_count: 4,
        ..SyntheticSpec::tiny(47)
    };
    let (model, tokenizer) = model(&spec, dir.path());
    let cloud = TestCloud::start(&model);
    // Only q, four layers, one kept: after the first step's review three of four are killed.
    let options = TuneOptions {
        targets: vec![LoraTarget::Q],
        epochs: 1,
        kill_revive: Some(KillReviveOptions {
            keep: 0.25,
            warmup_steps: Some(1),
            review_steps: Some(1),
            revive: false,
            revive_ratio: 1.0,
        }),
        ..options()
    };
    let mut remote =
        RemoteBlocks::connect(RemoteOptions::new(&cloud.address), &model.config).unwrap();
    let (_, report, tokens) = run(&model, &tokenizer, &options, Some(&mut remote));
    let c = &report.counters;
    let (r, hidden, q_dim) = (4u64, 64u64, 64u64);
    let killed_steps = &tokens[1..];
    let saved_flops: u64 = killed_steps
        .iter()
        .map(|&t| 3 * module_flops(t as u64, r, hidden, q_dim))
        .sum();
    assert_eq!(c.device_flops_all_active - c.device_flops, saved_flops);
    // A killed q is its whole group: x, its delta, the delta's gradient and dx, f32.
    let saved_bytes: u64 = killed_steps
        .iter()
        .map(|&t| 3 * t as u64 * (hidden + q_dim) * 2 * 4)
        .sum();
    assert_eq!(
        c.bytes_all_active - c.bytes_to_cloud - c.bytes_from_cloud,
        saved_bytes
    );
    // Per step: a request per active group forward and back, the final rows, the end; four
    // active groups in the first step, one after.
    let exchanges = |groups: u64| 2 * groups + 2;
    assert_eq!(
        c.round_trips,
        exchanges(4) + exchanges(1) * killed_steps.len() as u64
    );
    assert_eq!(c.active_modules, vec![1]);
    assert_eq!(c.kills, 3);
    assert_eq!(c.revivals, 0);
}
