//! One module per subcommand.

pub mod generate;
pub mod info;
pub mod tokenize;
