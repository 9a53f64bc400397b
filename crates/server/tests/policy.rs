//! The batching policy: the server's default speculative strategy while it pays, `ar` once
//! the batch is large enough that verification rows cost more than drafts save; a strategy a
//! request names is never changed.

use std::sync::Arc;

use pipespec_decode::{LevelMetrics, LevelReport, LevelSpec, StepReport, Strategy};
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::Model;
use pipespec_server::policy::Policy;

fn model(seed: u64, dir: &tempfile::TempDir) -> Arc<Model> {
    let path = dir.path().join(format!("m{seed}.gguf"));
    SyntheticSpec::tiny(seed).write(&path).unwrap();
    Model::load(&path).unwrap()
}

fn pass(rows: usize, seconds: f64) -> StepReport {
    StepReport {
        sequences: 1,
        rows,
        longest: rows,
        gap_seconds: None,
        seconds,
    }
}

#[test]
fn speculation_is_the_default_in_small_batches_and_ar_in_large_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (draft, target) = (model(1, &dir), model(2, &dir));
    let specs = vec![
        LevelSpec::ngram(),
        LevelSpec::model("draft", draft.clone()),
        LevelSpec::model("target", target.clone()),
    ];
    let policy = Policy::new(&specs);
    // nothing measured yet: the default stands
    assert_eq!(policy.choose(Strategy::Sd, false, 4, 64).0, Strategy::Sd);
    // target passes: 8 ms plus 0.5 ms a row; the drafter's ten times cheaper
    for rows in 1..=48 {
        policy.observe_pass(&target, &pass(rows, 0.008 + 0.0005 * rows as f64));
        policy.observe_pass(&draft, &pass(rows, 0.0008 + 0.00005 * rows as f64));
    }
    // a drafter that gets 80% of its drafts accepted, 4 of a window of 4 per verification
    let drafter = LevelReport {
        name: "draft".into(),
        metrics: LevelMetrics {
            n_drafted: 1000,
            n_accepted: 800,
            n_verifications: 200,
            ..LevelMetrics::default()
        },
    };
    let target_report = LevelReport {
        name: "target".into(),
        metrics: LevelMetrics::default(),
    };
    policy.observe_generation(Strategy::Sd, &[drafter, target_report]);
    assert_eq!(policy.choose(Strategy::Sd, false, 4, 1).0, Strategy::Sd);
    assert_eq!(policy.choose(Strategy::Sd, false, 4, 32).0, Strategy::Ar);
    let small = policy.estimate(Strategy::Sd, 4, 1).unwrap();
    let large = policy.estimate(Strategy::Sd, 4, 32).unwrap();
    assert!(small.speculative > small.autoregressive);
    assert!(large.speculative < large.autoregressive);
    // named strategies are kept; ar is never changed
    assert_eq!(policy.choose(Strategy::Sd, true, 4, 32).0, Strategy::Sd);
    assert_eq!(policy.choose(Strategy::Ar, false, 4, 1).0, Strategy::Ar);
    // lookup's drafter costs nothing: only the target's verification rows count
    assert!(policy.estimate(Strategy::Lookup, 4, 1).is_some());
}
