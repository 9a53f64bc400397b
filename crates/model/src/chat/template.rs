//! The compiled chat template: minijinja set up as transformers sets up Jinja, the messages
//! and special tokens it renders, and its errors.

use std::fmt::Write as _;

use minijinja::{context, Environment, Error};

use super::globals::{raise_exception, raised_message, strftime_now};
use super::tojson::tojson;

const TEMPLATE_NAME: &str = "chat_template";

/// One turn of a conversation: `role` is usually `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Why a chat template could not be compiled or applied.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error("chat template does not compile: {0}")]
    Syntax(String),
    /// The template itself called `raise_exception`, e.g. for roles in an order it does not accept.
    #[error("chat template rejected the conversation: {0}")]
    Rejected(String),
    #[error("chat template failed while rendering: {0}")]
    Render(String),
}

/// A compiled chat template plus the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source` once, with the Jinja settings transformers uses (`trim_blocks`,
    /// `lstrip_blocks`, loop controls, no trailing newline) and its extra globals.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatTemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Python string and dict methods (`.strip()`, `.startswith()`, `.split()`, `.items()`)
        // that templates written for transformers call freely.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|err| ChatTemplateError::Syntax(describe(&err)))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Renders `messages`; with `add_generation_prompt` the result ends with the header that
    /// opens the assistant's reply.
    pub fn apply(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|err| ChatTemplateError::Render(describe(&err)))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|err| match raised_message(&err) {
                Some(message) => ChatTemplateError::Rejected(message),
                None => ChatTemplateError::Render(describe(&err)),
            })
    }
}

/// The error's kind and detail plus where in the template it happened.
fn describe(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
