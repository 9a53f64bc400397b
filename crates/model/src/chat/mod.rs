//! Chat templates: renders a conversation into a prompt the way Hugging Face transformers'
//! `apply_chat_template` does, from the Jinja template a GGUF file carries.

mod globals;
mod template;
mod tojson;

pub use template::{ChatMessage, ChatTemplate, ChatTemplateError};

#[cfg(test)]
mod tests;
