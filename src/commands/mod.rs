//! One module per subcommand.

pub mod bench;
pub mod convert;
pub mod generate;
pub mod info;
pub mod predict;
pub mod serve;
pub mod tokenize;
pub mod tune;
pub mod tune_cloud;
