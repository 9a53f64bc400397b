//! Training end to end on a tiny seeded model: the loss falls and the greedy completions learn
//! the answers; the data reader labels what it should and names every bad line.

use std::path::Path;
use std::sync::Arc;

use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::test_support::pool;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{LoadOptions, Model};
use pipespec_tune::data::{Dataset, Encoder};
use pipespec_tune::{tune, TuneError, TuneEvent, TuneInputs, TuneOptions};

fn tiny(dir: &Path) -> (Arc<Model>, Tokenizer) {
    let path = dir.join("tiny.gguf");
    SyntheticSpec::tiny(21).write(&path).unwrap();
    let model = Model::load_with(&path, LoadOptions::selected().unwrap()).unwrap();
    let tokenizer = Tokenizer::from_gguf(model.file()).unwrap();
    (model, tokenizer)
}

/// An encoder for prompt/completion data (no chat template).
fn plain_encoder(tokenizer: &Tokenizer, max_seq: usize) -> Encoder<'_> {
    Encoder {
        tokenizer,
        template: None,
        max_seq,
    }
}

fn pairs() -> Vec<(String, String)> {
    ["red", "blue", "green", "gray"]
        .iter()
        .enumerate()
        .map(|(i, colour)| (format!("item {i} is"), format!(" {colour}")))
        .collect()
}

#[test]
fn tuning_lowers_the_loss_and_teaches_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tokenizer) = tiny(dir.path());
    let encoder = plain_encoder(&tokenizer, 64);
    let data: Dataset = encoder.pairs(&pairs()).unwrap();
    let options = TuneOptions {
        rank: 4,
        alpha: 8.0,
        epochs: 60,
        learning_rate: 2e-2,
        batch: 2,
        warmup_steps: Some(5),
        ..TuneOptions::default()
    };
    let threads = pool(2);
    let inputs = TuneInputs {
        model: &model,
        tokenizer: &tokenizer,
        train: &data,
        eval: Some(&data),
        pool: &threads,
    };
    let mut steps = 0;
    let (adapter, report) = tune(&inputs, &options, None, &mut |event| {
        if let TuneEvent::Step { .. } = event {
            steps += 1;
        }
    })
    .unwrap();
    assert_eq!(steps, 120);
    assert_eq!(report.steps, 120);
    assert_eq!(report.train_loss.len(), 60);
    let (before, after) = (
        report.eval_loss_before.unwrap(),
        report.eval_loss_after.unwrap(),
    );
    assert!(after < 0.1 * before, "eval loss {before} -> {after}");
    assert_eq!(report.eval_exact_match_before, Some(0.0));
    assert_eq!(report.eval_exact_match_after, Some(1.0), "{report:?}");
    assert_eq!(adapter.modules.len(), 7 * model.config.layer_count);
    assert!(report.tokens_trained > 0 && report.tokens_per_s > 0.0);
}

#[test]
fn a_bad_learning_rate_or_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tokenizer) = tiny(dir.path());
    let encoder = plain_encoder(&tokenizer, 64);
    let data = encoder.pairs(&pairs()).unwrap();
    let threads = pool(1);
    let inputs = TuneInputs {
        model: &model,
        tokenizer: &tokenizer,
        train: &data,
        eval: None,
        pool: &threads,
    };
    for (options, needle) in [
        (
            TuneOptions {
                learning_rate: -1.0,
                ..TuneOptions::default()
            },
            "--lr",
        ),
        (
            TuneOptions {
                learning_rate: f64::NAN,
                ..TuneOptions::default()
            },
            "--lr",
        ),
        (
            TuneOptions {
                batch: 0,
                ..TuneOptions::default()
            },
            "--batch",
        ),
        (
            TuneOptions {
                rank: 0,
                ..TuneOptions::default()
            },
            "--rank",
        ),
        (
            TuneOptions {
                targets: vec![],
                ..TuneOptions::default()
            },
            "--targets",
        ),
    ] {
        let message = match tune(&inputs, &options, None, &mut |_| {}) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("{options:?} was accepted"),
        };
        assert!(message.contains(needle), "{message}");
    }
}

#[test]
fn completions_and_assistant_replies_are_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tokenizer) = tiny(dir.path());
    let source = model.file().get_str("tokenizer.chat_template").unwrap();
    let template = ChatTemplate::new(
        source,
        tokenizer.bos_token_text(),
        tokenizer.eos_token_text(),
    )
    .unwrap();
    let encoder = Encoder {
        tokenizer: &tokenizer,
        template: Some(&template),
        max_seq: 64,
    };
    let text = concat!(
        r#"{"prompt": "abc", "completion": " de"}"#,
        "\n\n",
        r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "again"}, {"role": "assistant", "content": "ok"}]}"#,
        "\n",
    );
    let data = encoder.parse(text, Path::new("mem.jsonl")).unwrap();
    assert_eq!(data.examples.len(), 2);
    let pair = &data.examples[0];
    let labelled: Vec<u32> = pair
        .tokens
        .iter()
        .zip(&pair.label)
        .filter(|(_, &l)| l)
        .map(|(&t, _)| t)
        .collect();
    let mut expected = tokenizer.encode_with(" de", false, false).unwrap();
    expected.extend(tokenizer.eos_id());
    assert_eq!(labelled, expected);
    assert_eq!(pair.prompt_len, pair.tokens.len() - expected.len());

    let chat = &data.examples[1];
    let rendered = template
        .apply(
            &[
                ChatMessage::new("user", "hi"),
                ChatMessage::new("assistant", "yo"),
                ChatMessage::new("user", "again"),
                ChatMessage::new("assistant", "ok"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(chat.tokens, tokenizer.encode(&rendered, false).unwrap());
    let spans: String = chat
        .tokens
        .iter()
        .zip(&chat.label)
        .filter(|(_, &l)| l)
        .map(|(&t, _)| tokenizer.decode(&[t], true).unwrap())
        .collect();
    assert_eq!(spans, "yo<|im_end|>\nok<|im_end|>\n");
    assert_eq!(chat.reference, "yo");
}

#[test]
fn long_prompts_lose_their_oldest_tokens_and_hopeless_lines_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (_model, tokenizer) = tiny(dir.path());
    let encoder = plain_encoder(&tokenizer, 8);
    let prompt = "0123456789abcdef";
    let data = encoder
        .pairs(&[
            (prompt.into(), " x".into()),
            ("p".into(), " far too long an answer".into()),
        ])
        .unwrap();
    assert_eq!((data.examples.len(), data.skipped), (1, 1));
    let kept = &data.examples[0];
    assert_eq!(kept.tokens.len(), 8);
    let whole = encoder.pair(prompt, " x").unwrap();
    let full_tokens = Encoder {
        max_seq: 1000,
        ..encoder
    }
    .pair(prompt, " x")
    .unwrap()
    .unwrap();
    assert_eq!(whole.as_ref(), Some(kept));
    assert!(full_tokens.tokens.ends_with(&kept.tokens));
}

#[test]
fn bad_lines_are_named_with_their_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let (_model, tokenizer) = tiny(dir.path());
    let encoder = plain_encoder(&tokenizer, 64);
    let path = Path::new("train.jsonl");
    for (text, needle) in [
        (
            "{\"prompt\": \"a\", \"completion\": \"b\"}\n{not json\n",
            "train.jsonl:2",
        ),
        ("{\"prompt\": \"a\"}\n", "both `prompt` and `completion`"),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
            "chat template",
        ),
        ("\n\n", "no usable example"),
    ] {
        let error: TuneError = encoder.parse(text, path).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(needle), "{text:?}: {message}");
    }
    let missing = encoder
        .load(Path::new("/nonexistent/data.jsonl"))
        .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/data.jsonl"),
        "{missing}"
    );
}
