//! `pipespec tune-cloud`: loads a model's frozen blocks and serves them to DLoRA devices
//! (`pipespec tune --cloud ADDR`) until interrupted.

use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::DType;
use pipespec_tune::base::FrozenBase;

use crate::cli::TuneCloudArgs;
use crate::loading;

pub fn run(args: TuneCloudArgs) -> Result<()> {
    if let Some(threads) = args.threads {
        // The steps run on the runtime's blocking threads; their ops use the global pool, which
        // must be sized before anything (loading included) first uses it.
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build_global()
            .context("creating the compute thread pool")?;
    }
    let path = loading::resolve_model_path(args.model.model.as_deref())?;
    let loaded = loading::load(&path)?;
    let pool = loading::thread_pool(args.threads)?;
    let base = pool.install(|| FrozenBase::load(&loaded.model, DType::F32))?;
    let base = Arc::new(base);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the network runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot bind", args.listen))?;
        let address = listener.local_addr()?;
        eprintln!(
            "pipespec tune-cloud: serving the {} frozen blocks of {} on {address}",
            base.config.layer_count,
            path.display()
        );
        let interrupted = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        pipespec_dlora::serve(base, listener, interrupted)
            .await
            .context("serving")
    })
}
