//! Greedy exactness on the real default model (SmolLM2-135M-Instruct Q4_1): every strategy's text equals `ar`'s on real chat prompts.

use std::sync::Arc;

use pipespec_decode::{
    GenerationConfig, Level, ModelLevel, NgramLevel, SamplingParams, SpeculationConfig, Strategy,
};
use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::test_support::default_model;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{Model, Session};

const NEW_TOKENS: usize = 48;

const PROMPTS: [&str; 4] = [
    "What is the capital of France, and what is it famous for?",
    "Write a short poem about the sea.",
    "Summarize in two sentences: The quick brown fox jumps over the lazy dog. The dog does not react. \
     The fox jumps again, and again the dog does not react. Finally the fox gives up and goes home.",
    "List three tips for writing clean Python code.",
];

fn prompt_tokens(model: &Model, tokenizer: &Tokenizer, prompt: &str) -> Vec<u32> {
    let source = model
        .file()
        .get_str("tokenizer.chat_template")
        .expect("the model has a chat template");
    let template = ChatTemplate::new(
        source,
        tokenizer.bos_token_text(),
        tokenizer.eos_token_text(),
    )
    .expect("a chat template");
    let text = template
        .apply(&[ChatMessage::new("user", prompt)], true)
        .expect("applying the chat template");
    tokenizer
        .encode(&text, false)
        .expect("tokenizing the prompt")
}

#[test]
fn every_strategy_reproduces_ar_on_the_real_model() {
    let path = default_model();
    // The second handle shares the first's mapped weights: `q4_1 -> q4_1` costs no extra memory.
    let target = Model::load(&path).expect("loading the default model");
    let draft = Model::load(&path).expect("loading the default model again");
    let tokenizer = Tokenizer::from_gguf(target.file()).expect("the default model's tokenizer");
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a thread pool"),
    );
    let level = |model: &Arc<Model>, name: &str| -> Box<dyn Level> {
        Box::new(ModelLevel::new(
            name,
            Session::new(model.clone(), 1024, pool.clone()),
        ))
    };
    let config = GenerationConfig {
        max_tokens: NEW_TOKENS,
        sampling: SamplingParams::greedy(),
        seed: 0,
        stop_ids: tokenizer.end_of_generation_ids().to_vec(),
        ignore_eos: true,
    };
    let speculation = SpeculationConfig::default();
    for prompt in PROMPTS {
        let prompt_ids = prompt_tokens(&target, &tokenizer, prompt);
        let mut expected = None;
        for (strategy, names) in [
            (Strategy::Ar, vec!["q4_1"]),
            (Strategy::Sd, vec!["q4_1", "q4_1"]),
            (Strategy::Lookup, vec!["ngram", "q4_1"]),
            (Strategy::Staged, vec!["ngram", "q4_1", "q4_1"]),
        ] {
            let mut chain: Vec<Box<dyn Level>> = names
                .iter()
                .enumerate()
                .map(|(i, &name)| match name {
                    "ngram" => Box::new(NgramLevel::default()) as Box<dyn Level>,
                    _ if i + 1 == names.len() => level(&target, "target"),
                    _ => level(&draft, "draft"),
                })
                .collect();
            let output = strategy
                .generate(&mut chain, &prompt_ids, &config, &speculation, &mut |_| {
                    true
                })
                .unwrap_or_else(|e| panic!("{strategy} on {prompt:?}: {e}"));
            let tokens = output.generation.tokens;
            assert_eq!(tokens.len(), NEW_TOKENS, "{strategy} on {prompt:?}");
            let expected = expected.get_or_insert_with(|| tokens.clone());
            assert_eq!(
                &tokens,
                expected,
                "{strategy} ({}) differs from ar on {prompt:?}:\n  ar: {:?}\n  {strategy}: {:?}",
                names.join(" -> "),
                tokenizer.decode(expected, false).unwrap_or_default(),
                tokenizer.decode(&tokens, false).unwrap_or_default(),
            );
            if strategy == Strategy::Sd {
                let draft = &output.levels[0].metrics;
                assert_eq!(
                    draft.n_accepted, draft.n_drafted,
                    "the target's own weights were rejected as a draft"
                );
            }
        }
    }
}
