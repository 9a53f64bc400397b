//! The command line's integration tests, one binary (see ripgrep's layout).

mod cli_bench;
mod cli_bench_errors;
mod cli_dlora;
mod cli_errors;
mod cli_generate;
mod cli_help;
mod cli_serve;
mod cli_tune;
mod golden;
mod util;
