//! `--help` of every subcommand ends with an example of its use.

use crate::util::{run, stderr, stdout};

/// The subcommands `pipespec --help` lists (its own `help` left out).
fn subcommands() -> Vec<String> {
    let output = run(&["--help"], "");
    assert!(output.status.success(), "{}", stderr(&output));
    let help = stdout(&output);
    let names: Vec<String> = help
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    assert!(
        names.contains(&"generate".to_string()) && names.contains(&"bench".to_string()),
        "no subcommands found in:\n{help}"
    );
    names
}

#[test]
fn every_subcommand_shows_an_example() {
    for name in subcommands() {
        let output = run(&[&name, "--help"], "");
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let help = stdout(&output);
        let example = help
            .lines()
            .skip_while(|line| *line != "Example:")
            .nth(1)
            .unwrap_or_else(|| panic!("`{name} --help` has no example:\n{help}"));
        let invocation = format!("pipespec {name}");
        assert!(
            example.trim_start() == invocation
                || example.trim_start().starts_with(&format!("{invocation} ")),
            "`{name} --help`'s example runs another command: {example}"
        );
    }
    let generate = stdout(&run(&["generate", "--help"], ""));
    assert!(
        generate.contains("  pipespec generate --max-tokens 64 \"Write a haiku about the sea.\""),
        "{generate}"
    );
}
