//! The `pipespec` command line: parses flags and calls the engine's crates.

mod adapters;
mod cli;
mod commands;
mod fetch;
mod home;
mod loading;
mod suites;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Generate(args) => commands::generate::run(args),
        cli::Command::Fetch => fetch::ensure_default_model().map(|path| {
            eprintln!("default model ready: {}", path.display());
        }),
        cli::Command::Tokenize(args) => commands::tokenize::run(args),
        cli::Command::Info(args) => commands::info::run(args),
        cli::Command::Predict(args) => commands::predict::run(args),
        cli::Command::Convert(args) => commands::convert::run(args),
        cli::Command::Serve(args) => commands::serve::run(args),
        cli::Command::Bench(args) => commands::bench::run(args),
        cli::Command::Tune(args) => commands::tune::run(args),
        cli::Command::TuneCloud(args) => commands::tune_cloud::run(args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
