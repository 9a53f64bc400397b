//! Prompt files, one JSON object a line: `turns` (a list of strings) or `prompt`, an optional `category` and id.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::Prompt;

/// The category of prompts that name none.
pub const DEFAULT_CATEGORY: &str = "default";

pub fn load_file(path: &Path) -> Result<Vec<Prompt>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the prompt file {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses every non-blank line of `text`; `source` names it in errors.
pub fn parse(text: &str, source: &str) -> Result<Vec<Prompt>> {
    let mut prompts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("{source} line {number}: not a JSON object"))?;
        let prompt =
            from_object(&value, number).with_context(|| format!("{source} line {number}"))?;
        prompts.push(prompt);
    }
    if prompts.is_empty() {
        bail!("{source} has no prompts");
    }
    Ok(prompts)
}

fn from_object(value: &Value, number: usize) -> Result<Prompt> {
    let Some(object) = value.as_object() else {
        bail!("expected a JSON object with `turns` or `prompt`");
    };
    let turns = match (object.get("turns"), object.get("prompt")) {
        (Some(Value::Array(items)), _) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                _ => bail!("`turns` must be a list of strings"),
            })
            .collect::<Result<Vec<_>>>()?,
        (Some(_), _) => bail!("`turns` must be a list of strings"),
        (None, Some(Value::String(text))) => vec![text.clone()],
        (None, Some(_)) => bail!("`prompt` must be a string"),
        (None, None) => bail!("expected `turns` (a list of strings) or `prompt` (a string)"),
    };
    if turns.is_empty() || turns.iter().any(|t| t.trim().is_empty()) {
        bail!("empty prompt: every turn needs some text");
    }
    let category = match object.get("category") {
        None | Some(Value::Null) => DEFAULT_CATEGORY.to_string(),
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_string(),
        Some(other) => bail!("`category` must be a non-empty string, got {other}"),
    };
    let id = ["question_id", "task_id", "id"]
        .iter()
        .find_map(|key| match object.get(*key) {
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Number(id)) => Some(id.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| number.to_string());
    Ok(Prompt {
        id,
        category,
        turns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_or_prompt_with_optional_category_and_id() {
        let text = r#"{"question_id": 7, "category": "qa", "turns": ["a?", "b?"]}

{"prompt": "hello"}
{"task_id": "HumanEval/0", "prompt": "def f():", "category": "code"}"#;
        let prompts = parse(text, "t").unwrap();
        assert_eq!(prompts.len(), 3);
        assert_eq!(prompts[0].id, "7");
        assert_eq!(prompts[0].turns, ["a?", "b?"]);
        assert_eq!(prompts[1].category, DEFAULT_CATEGORY);
        assert_eq!(prompts[1].id, "3");
        assert_eq!(prompts[2].id, "HumanEval/0");
    }

    #[test]
    fn bad_lines_are_named() {
        for (line, expected) in [
            ("not json", "line 1: not a JSON object"),
            (r#"{"turns": [1]}"#, "list of strings"),
            (r#"{"text": "x"}"#, "expected `turns`"),
            (r#"{"prompt": "  "}"#, "empty prompt"),
            (r#"{"prompt": "x", "category": 3}"#, "`category`"),
        ] {
            let error = format!("{:#}", parse(line, "f.jsonl").unwrap_err());
            assert!(error.contains(expected), "{line}: {error}");
        }
        assert!(parse("\n\n", "f.jsonl").is_err());
    }
}
