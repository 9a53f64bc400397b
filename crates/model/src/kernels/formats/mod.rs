//! The packed weight formats: decoding GGUF blocks, writing them into panels, and one kernel
//! per family of formats, each written once over the `Simd` back ends.

pub(crate) mod canonical;
pub(crate) mod encode;
pub(crate) mod float;
pub(crate) mod k4;
pub(crate) mod nibble32;
pub(crate) mod q6_k;
pub(crate) mod q8_0;
