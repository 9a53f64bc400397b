//! LoRA modules as hosted units. The frozen blocks ask a [`ModuleHost`] for the deltas
//! `scale·B·(A·x)` of each group of modules that read one input (q/k/v, o, gate/up, down) and
//! hand it the gradient at those deltas on the way back. Local tuning hosts them in process
//! ([`ModuleBank`]); DLoRA's cloud reaches the device's bank over the network. Either way the
//! device-side arithmetic is the same code, so a split run equals a local one bit for bit.

pub mod bank;
pub mod group;
pub mod op;

pub use bank::{ModuleBank, ModuleGrads};
pub use group::{ActiveSet, GroupKind};
pub use op::{hosted_deltas, ModuleHost};
