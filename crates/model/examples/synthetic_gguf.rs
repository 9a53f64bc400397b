//! Writes a seeded random-weight F32 llama whose matrices all have rows of a multiple of 256
//! values, so that llama.cpp's `llama-quantize` can make every K-quant of it: the source of the
//! llama.cpp-made test fixtures (`scripts/make-llamacpp-fixture.sh`).
//!
//!     cargo run --release -p pipespec-model --example synthetic_gguf -- OUT.gguf [SEED]

use std::path::PathBuf;
use std::process::ExitCode;

use pipespec_model::synthetic::SyntheticSpec;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: synthetic_gguf OUT.gguf [SEED]");
        return ExitCode::from(2);
    };
    let seed = match args.next().map(|s| s.parse::<u64>()) {
        None => 7,
        Some(Ok(seed)) => seed,
        Some(Err(e)) => {
            eprintln!("SEED: {e}");
            return ExitCode::from(2);
        }
    };
    let spec = SyntheticSpec {
        hidden_size: 256,
        intermediate_size: 512,
        head_count: 4,
        kv_head_count: 2,
        // A sharper next-token distribution: fewer near-ties between the two best tokens.
        logit_scale: 4.0,
        ..SyntheticSpec::tiny(seed)
    };
    match spec.write(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("writing {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
