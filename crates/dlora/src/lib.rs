//! DLoRA (Gao and Zhang, Findings of EMNLP 2024): LoRA fine-tuning split between a cloud
//! process, which holds the frozen decoder blocks, and a device process, which holds the data,
//! the token embedding, the output head and every LoRA module with its optimizer state. Per
//! step the device sends the embedded batch; at each active module group the cloud sends the
//! group's input and receives its deltas; backward mirrors it with gradients. The link is gRPC
//! (tonic + prost), tensors as raw little-endian bytes with shape and dtype.

pub mod cloud;
pub mod device;
mod error;
mod relay;
pub mod transport;
pub mod wire;

pub use cloud::{serve, CloudService};
pub use device::{RemoteBlocks, RemoteOptions};
pub use error::{DloraError, Result};

/// The generated protocol (`proto/dlora.proto`).
pub mod proto {
    tonic::include_proto!("pipespec.dlora.v1");
}
