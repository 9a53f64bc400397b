//! Training data: JSONL lines of `{"messages": [...]}` (the chat template applied, loss on the
//! assistant's tokens) or `{"prompt": ..., "completion": ...}` (loss on the completion and the
//! EOS after it), tokenized and cut to `--max-seq` by dropping the oldest prompt tokens.

use std::path::{Path, PathBuf};

use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::tokenizer::Tokenizer;
use serde::Deserialize;

use crate::error::{invalid, Result, TuneError};

/// One tokenized example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub tokens: Vec<u32>,
    /// Per token: whether it is a label (predicted from the tokens before it).
    pub label: Vec<bool>,
    /// Tokens before the first label: what a greedy completion starts from.
    pub prompt_len: usize,
    /// The text of the first labelled span (the completion, or the first assistant reply).
    pub reference: String,
}

/// A data file's examples, and how many lines were too long to keep a label.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub examples: Vec<Example>,
    pub skipped: usize,
}

#[derive(Deserialize)]
struct Line {
    messages: Option<Vec<ChatMessage>>,
    prompt: Option<String>,
    completion: Option<String>,
}

/// What tokenizes the examples.
pub struct Encoder<'a> {
    pub tokenizer: &'a Tokenizer,
    pub template: Option<&'a ChatTemplate>,
    pub max_seq: usize,
}

impl Encoder<'_> {
    /// A prompt and its completion: BOS where the model wants one, the prompt, then the
    /// completion and EOS as labels. None when too long to keep any prompt token.
    pub fn pair(&self, prompt: &str, completion: &str) -> Result<Option<Example>> {
        let mut head = Vec::new();
        if self.tokenizer.adds_bos() {
            head.extend(self.tokenizer.bos_id());
        }
        let prompt_tokens = self.tokenizer.encode_with(prompt, false, false)?;
        let mut answer = self.tokenizer.encode_with(completion, false, false)?;
        answer.extend(self.tokenizer.eos_id());
        let segments = [(head, false), (prompt_tokens, false), (answer, true)];
        Ok(self.assemble(&segments, completion.to_string()))
    }

    /// A conversation: every assistant message (and what the template closes it with) is a
    /// label span.
    pub fn conversation(&self, messages: &[ChatMessage]) -> Result<Option<Example>> {
        let template = self
            .template
            .ok_or_else(|| invalid("the model has no chat template (tokenizer.chat_template) for `messages` data: use prompt/completion lines"))?;
        let mut segments: Vec<(Vec<u32>, bool)> = Vec::new();
        let mut done = String::new();
        let mut reference = None;
        for (i, message) in messages.iter().enumerate() {
            if message.role != "assistant" {
                continue;
            }
            let opened = template
                .apply(&messages[..i], true)
                .map_err(|e| invalid(e.to_string()))?;
            let closed = template
                .apply(&messages[..=i], false)
                .map_err(|e| invalid(e.to_string()))?;
            let (Some(context), Some(reply)) = (
                opened.strip_prefix(done.as_str()),
                closed.strip_prefix(opened.as_str()),
            ) else {
                return Err(invalid("the chat template does not render a conversation as a prefix of its continuation"));
            };
            segments.push((self.tokenizer.encode(context, false)?, false));
            segments.push((self.tokenizer.encode(reply, false)?, true));
            reference.get_or_insert_with(|| message.content.clone());
            done = closed;
        }
        let Some(reference) = reference else {
            return Err(invalid(
                "a `messages` line has no assistant message to learn",
            ));
        };
        Ok(self.assemble(&segments, reference))
    }

    /// Concatenates segments, dropping the oldest tokens before the first label when over
    /// `max_seq` (BOS kept); None when even that is not enough.
    fn assemble(&self, segments: &[(Vec<u32>, bool)], reference: String) -> Option<Example> {
        let mut tokens = Vec::new();
        let mut label = Vec::new();
        for (ids, is_label) in segments {
            tokens.extend_from_slice(ids);
            label.extend(std::iter::repeat_n(*is_label, ids.len()));
        }
        let prompt_len = label.iter().position(|&l| l)?;
        let keep_first = usize::from(self.tokenizer.adds_bos() && prompt_len > 1);
        let over = tokens.len().saturating_sub(self.max_seq);
        let droppable = prompt_len.saturating_sub(keep_first + 1);
        if over > droppable {
            return None;
        }
        tokens.drain(keep_first..keep_first + over);
        label.drain(keep_first..keep_first + over);
        Some(Example {
            prompt_len: prompt_len - over,
            tokens,
            label,
            reference,
        })
    }

    /// Parses JSONL text; `path` names it in errors.
    pub fn parse(&self, text: &str, path: &Path) -> Result<Dataset> {
        let mut data = Dataset::default();
        let located = |line: usize, what: String| TuneError::Data {
            path: path.to_path_buf(),
            line,
            what,
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_str(line).map_err(|e| {
                located(
                    i + 1,
                    format!("not a JSON object of the expected form: {e}"),
                )
            })?;
            let example = match (parsed.messages, parsed.prompt, parsed.completion) {
                (Some(messages), None, None) => self.conversation(&messages),
                (None, Some(prompt), Some(completion)) => self.pair(&prompt, &completion),
                _ => Err(invalid(
                    "each line needs either `messages` or both `prompt` and `completion`",
                )),
            }
            .map_err(|e| located(i + 1, e.to_string()))?;
            match example {
                Some(example) => data.examples.push(example),
                None => data.skipped += 1,
            }
        }
        if data.examples.is_empty() {
            return Err(located(
                0,
                format!(
                    "no usable example ({} too long for --max-seq {})",
                    data.skipped, self.max_seq
                ),
            ));
        }
        Ok(data)
    }

    /// Reads and parses a JSONL file.
    pub fn load(&self, path: &Path) -> Result<Dataset> {
        let text = std::fs::read_to_string(path).map_err(|source| TuneError::Io {
            path: PathBuf::from(path),
            source,
        })?;
        self.parse(&text, path)
    }

    /// Examples from prompt/completion pairs built in memory (the `--task` sets).
    pub fn pairs(&self, pairs: &[(String, String)]) -> Result<Dataset> {
        let mut data = Dataset::default();
        for (prompt, completion) in pairs {
            match self.pair(prompt, completion)? {
                Some(example) => data.examples.push(example),
                None => data.skipped += 1,
            }
        }
        Ok(data)
    }
}
