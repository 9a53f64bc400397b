//! Spec-Bench's 480 questions (Apache-2.0, `data/spec_bench/`), built into the binary.

use anyhow::Result;

use super::{jsonl, Prompt};

/// `question.jsonl` of Spec-Bench: `question_id`, `category`, `turns`.
const QUESTIONS: &str = include_str!("../../data/spec_bench/question.jsonl");

pub fn load() -> Result<Vec<Prompt>> {
    jsonl::parse(QUESTIONS, "spec-bench question.jsonl")
}
