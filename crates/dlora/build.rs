//! Compiles the wire protocol with protox (pure Rust: no protoc binary needed) and generates
//! the tonic service and prost messages.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/dlora.proto");
    let descriptors = protox::compile(["proto/dlora.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
