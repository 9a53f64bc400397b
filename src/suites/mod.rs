//! Benchmark prompt suites: Spec-Bench (vendored), HumanEval (fetched on first use) or a JSONL file, and picking prompts from them.

mod humaneval;
mod jsonl;
mod spec_bench;

use std::path::PathBuf;

use anyhow::{bail, Result};

/// One benchmark prompt: a conversation's user turns, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The suite's own id (`question_id`, `task_id`, ...), else the line number.
    pub id: String,
    pub category: String,
    pub turns: Vec<String>,
}

/// Where prompts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Suite {
    SpecBench,
    HumanEval,
    File(PathBuf),
}

impl Suite {
    /// `spec-bench`, `humaneval`, or a path to a `.jsonl` file.
    pub fn parse(name: &str) -> Result<Suite> {
        match name.trim() {
            "spec-bench" | "spec_bench" | "specbench" => Ok(Suite::SpecBench),
            "humaneval" | "human-eval" | "human_eval" => Ok(Suite::HumanEval),
            "" => bail!("--suite is empty: give spec-bench, humaneval or a PATH.jsonl"),
            path => {
                let path = PathBuf::from(path);
                if !path.exists() {
                    bail!(
                        "--suite {}: no such file (give spec-bench, humaneval or a PATH.jsonl)",
                        path.display()
                    );
                }
                Ok(Suite::File(path))
            }
        }
    }

    /// A short name for reports.
    pub fn label(&self) -> String {
        match self {
            Suite::SpecBench => "spec-bench".into(),
            Suite::HumanEval => "humaneval".into(),
            Suite::File(path) => path.display().to_string(),
        }
    }

    /// Every prompt of the suite, in its own order.
    pub fn load(&self) -> Result<Vec<Prompt>> {
        match self {
            Suite::SpecBench => spec_bench::load(),
            Suite::HumanEval => humaneval::load(),
            Suite::File(path) => jsonl::load_file(path),
        }
    }
}

/// The prompts of `categories` (all when empty), at most `limit` of them, taken round-robin
/// across categories (the first of each, then the second of each, ...) so that a small limit
/// still covers every category. Categories keep the order given, else their first appearance.
pub fn select(
    prompts: &[Prompt],
    categories: &[String],
    limit: Option<usize>,
) -> Result<Vec<Prompt>> {
    let mut order: Vec<&str> = Vec::new();
    for prompt in prompts {
        if !order.contains(&prompt.category.as_str()) {
            order.push(&prompt.category);
        }
    }
    if !categories.is_empty() {
        if let Some(missing) = categories.iter().find(|c| !order.contains(&c.as_str())) {
            bail!(
                "--categories: the suite has no category {missing:?}; it has {}",
                order.join(", ")
            );
        }
        order = categories.iter().map(String::as_str).collect();
        order.dedup();
    }
    let groups: Vec<Vec<&Prompt>> = order
        .iter()
        .map(|category| prompts.iter().filter(|p| p.category == *category).collect())
        .collect();
    let total: usize = groups.iter().map(Vec::len).sum();
    let wanted = limit.unwrap_or(total).min(total);
    let mut picked = Vec::with_capacity(wanted);
    for rank in 0.. {
        if picked.len() == wanted {
            break;
        }
        for group in &groups {
            if let Some(prompt) = group.get(rank) {
                if picked.len() < wanted {
                    picked.push((*prompt).clone());
                }
            }
        }
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(id: usize, category: &str) -> Prompt {
        Prompt {
            id: id.to_string(),
            category: category.into(),
            turns: vec![format!("question {id}")],
        }
    }

    fn ids(prompts: &[Prompt]) -> Vec<&str> {
        prompts.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn a_limit_takes_categories_in_turn() {
        let all = [
            prompt(1, "a"),
            prompt(2, "a"),
            prompt(3, "a"),
            prompt(4, "b"),
            prompt(5, "c"),
            prompt(6, "c"),
        ];
        assert_eq!(
            ids(&select(&all, &[], Some(4)).unwrap()),
            ["1", "4", "5", "2"]
        );
        assert_eq!(
            ids(&select(&all, &[], None).unwrap()),
            ["1", "4", "5", "2", "6", "3"]
        );
        assert_eq!(ids(&select(&all, &[], Some(100)).unwrap()).len(), 6);
        assert!(select(&all, &[], Some(0)).unwrap().is_empty());
    }

    #[test]
    fn categories_filter_and_order() {
        let all = [
            prompt(1, "a"),
            prompt(2, "b"),
            prompt(3, "c"),
            prompt(4, "c"),
        ];
        let picked = select(&all, &["c".into(), "a".into()], None).unwrap();
        assert_eq!(ids(&picked), ["3", "1", "4"]);
        let error = select(&all, &["z".into()], None).unwrap_err().to_string();
        assert!(
            error.contains("\"z\"") && error.contains("a, b, c"),
            "{error}"
        );
    }

    #[test]
    fn spec_bench_has_480_questions_in_13_categories() {
        let questions = Suite::SpecBench.load().unwrap();
        assert_eq!(questions.len(), 480);
        let mut categories: Vec<&str> = questions.iter().map(|q| q.category.as_str()).collect();
        categories.sort();
        categories.dedup();
        assert_eq!(
            categories,
            [
                "coding",
                "extraction",
                "humanities",
                "math",
                "math_reasoning",
                "qa",
                "rag",
                "reasoning",
                "roleplay",
                "stem",
                "summarization",
                "translation",
                "writing"
            ]
        );
        assert!(questions.iter().all(|q| !q.turns.is_empty()));
        // 40 round-robin picks cover every category.
        let picked = select(&questions, &[], Some(40)).unwrap();
        let mut covered: Vec<&str> = picked.iter().map(|q| q.category.as_str()).collect();
        covered.sort();
        covered.dedup();
        assert_eq!(covered.len(), 13);
        assert_eq!(picked[0].id, "81");
    }
}
