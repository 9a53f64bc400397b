//! `pipespec tokenize`: the ids of a text, BOS added only where the GGUF says so.

use anyhow::Result;

use crate::cli::TokenizeArgs;
use crate::loading;

pub fn run(args: TokenizeArgs) -> Result<()> {
    let path = loading::resolve_model_path(args.model.model.as_deref())?;
    let file = pipespec_model::gguf::GgufFile::open(&path)?;
    let tokenizer = pipespec_model::tokenizer::Tokenizer::from_gguf(&file)?;
    let ids = tokenizer.encode(&args.text, true)?;
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}
