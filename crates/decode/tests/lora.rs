//! Greedy exactness with LoRA adapters on the target: every strategy reproduces the adapted
//! target's own `ar`, whether its drafters run the base weights or the adapted ones.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use pipespec_decode::{
    generate_autoregressive, LevelKind, SamplingParams, SpeculationConfig, Strategy,
};
use pipespec_model::lora::LoraTarget;
use pipespec_model::synthetic::random_adapter;
use pipespec_model::{AdapterScale, LoraStack, Model};

use crate::common::{chain, config, model_level, random_tokens, session, spec, LevelSpec, Models};

fn adapted(model: &Arc<Model>, seed: u64, scale: f32) -> Arc<LoraStack> {
    let targets = [
        LoraTarget::Q,
        LoraTarget::V,
        LoraTarget::Output,
        LoraTarget::Down,
        LoraTarget::Head,
    ];
    let adapter = random_adapter(model, &targets, 1 + seed as usize % 4, 8.0, 0.3, seed);
    let entry = AdapterScale {
        adapter: Arc::new(adapter),
        user_scale: scale,
    };
    Arc::new(LoraStack::new(model, vec![entry]).expect("the adapter fits"))
}

#[test]
fn every_strategy_reproduces_the_adapted_targets_ar() {
    let mut models = Models::new();
    // drafted and accepted by the level just below the target: base weights, adapted weights
    let (mut base, mut same) = ((0, 0), (0, 0));
    for case in 0..12u64 {
        let vocab = [64, 320][case as usize % 2];
        let target_spec = spec(
            300 + case,
            vocab,
            32 * (1 + case as usize % 2),
            1 + case as usize % 2,
        );
        let target = models.load(&target_spec);
        let lora = adapted(&target, case, [1.0, 0.5, 2.0][case as usize % 3]);
        let mut quantized = target_spec.clone();
        quantized.matrix_dtype = GgmlDType::Q4_1;
        let drafter = models.load(&quantized);
        let adapted_target = model_level(target.clone()).with_lora(Some(lora.clone()));
        let drafter_lora = adapted(&drafter, case, [1.0, 0.5, 2.0][case as usize % 3]);
        let chains: [Vec<LevelSpec>; 3] = [
            vec![model_level(target.clone()), adapted_target.clone()],
            vec![
                model_level(target.clone()).with_lora(Some(lora.clone())),
                adapted_target.clone(),
            ],
            vec![
                LevelSpec::ngram(),
                model_level(drafter.clone()).with_lora(Some(drafter_lora)),
                adapted_target.clone(),
            ],
        ];
        let prompt = random_tokens(case, 4 + case as usize % 9, vocab);
        let generation = config(
            20 + case as usize % 7,
            SamplingParams::greedy(),
            0,
            Vec::new(),
        );
        let mut reference_session = session(&target);
        reference_session.set_lora(Some(lora.clone())).unwrap();
        let expected =
            generate_autoregressive(&mut reference_session, &prompt, &generation, &mut |_| true)
                .expect("the reference run");
        let plain =
            generate_autoregressive(&mut session(&target), &prompt, &generation, &mut |_| true)
                .expect("the base run");
        assert_ne!(
            plain.tokens, expected.tokens,
            "case {case}: the adapter changes nothing"
        );
        let speculation = SpeculationConfig::with_window(1 + case as usize % 6);
        for (index, levels) in chains.iter().enumerate() {
            for strategy in Strategy::ALL {
                let mut levels = chain(levels);
                if strategy.levels(&LevelKind::of_chain(&levels)).is_err() {
                    continue;
                }
                let output = strategy
                    .generate(&mut levels, &prompt, &generation, &speculation, &mut |_| {
                        true
                    })
                    .unwrap_or_else(|e| panic!("case {case}, chain {index}, {strategy}: {e}"));
                assert_eq!(
                    output.generation.tokens, expected.tokens,
                    "case {case}, chain {index}, {strategy}: the tokens differ from the adapted ar"
                );
                let tally = match index {
                    0 => &mut base,
                    1 => &mut same,
                    _ => continue,
                };
                if strategy == Strategy::Sd {
                    let report = &output.levels[0].metrics;
                    tally.0 += report.n_drafted;
                    tally.1 += report.n_accepted;
                }
            }
        }
    }
    eprintln!("sd acceptance below the adapted target: base drafter {base:?}, adapted {same:?}");
    assert!(
        same.0 > 50 && same.0 == same.1,
        "adapted identical drafts rejected: {same:?}"
    );
    assert!(base.1 < base.0, "base drafts all accepted: {base:?}");
}
