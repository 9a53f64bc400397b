//! One example per subcommand, shown at the end of its `--help` (and checked to parse).

/// The text after a subcommand's help: an "Example:" heading over `pipespec ARGS`, each
/// argument with a space in it double-quoted.
pub fn help(args: &[&str]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|arg| {
            if arg.contains(char::is_whitespace) {
                format!("\"{arg}\"")
            } else {
                arg.to_string()
            }
        })
        .collect();
    format!("Example:\n  pipespec {}", quoted.join(" "))
}

pub const GENERATE: &[&str] = &[
    "generate",
    "--max-tokens",
    "64",
    "Write a haiku about the sea.",
];
pub const FETCH: &[&str] = &["fetch"];
pub const TOKENIZE: &[&str] = &["tokenize", "Hello, world."];
pub const INFO: &[&str] = &["info", "model.gguf"];
pub const PREDICT: &[&str] = &[
    "predict",
    "--alpha",
    "0.8",
    "--gamma",
    "6",
    "--levels",
    "3",
    "--cost-ratio",
    "0.1",
];
pub const CONVERT: &[&str] = &["convert", "model.gguf", "model-q8_0.gguf", "--type", "q8_0"];
pub const SERVE: &[&str] = &[
    "serve",
    "--chain",
    "ngram,model.gguf",
    "--strategy",
    "lookup",
    "--port",
    "8080",
];
pub const BENCH: &[&str] = &[
    "bench",
    "--chain",
    "draft.gguf,target.gguf",
    "--limit",
    "8",
    "--out",
    "bench-out",
];
pub const TUNE: &[&str] = &[
    "tune",
    "--task",
    "boolq",
    "--max-steps",
    "200",
    "--out",
    "boolq-lora.gguf",
];
pub const TUNE_CLOUD: &[&str] = &["tune-cloud", "--listen", "127.0.0.1:50551"];

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::Cli;

    const ALL: [&[&str]; 10] = [
        GENERATE, FETCH, TOKENIZE, INFO, PREDICT, CONVERT, SERVE, BENCH, TUNE, TUNE_CLOUD,
    ];

    #[test]
    fn every_subcommand_has_an_example_that_parses() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|command| command.get_name().to_string())
            .collect();
        let examples: Vec<&str> = ALL.iter().map(|args| args[0]).collect();
        assert_eq!(names, examples);
        for args in ALL {
            // Double quotes keep these characters special in a shell: the help would lie.
            assert!(
                !args
                    .iter()
                    .any(|arg| arg.contains(['"', '$', '`', '\\', '!'])),
                "{args:?}"
            );
            let parsed =
                Cli::try_parse_from(std::iter::once("pipespec").chain(args.iter().copied()));
            assert!(parsed.is_ok(), "{args:?}: {}", parsed.unwrap_err());
        }
    }

    #[test]
    fn the_help_text_quotes_arguments_with_spaces() {
        assert_eq!(
            help(GENERATE),
            "Example:\n  pipespec generate --max-tokens 64 \"Write a haiku about the sea.\""
        );
    }
}
