//! `pipespec tune --cloud ADDR` and `--kill-revive`: the runner that reaches the cloud, the
//! Kill-and-Revive settings, and the DLoRA counters in the summary.

use anyhow::{bail, Context, Result};
use pipespec_dlora::{RemoteBlocks, RemoteOptions};
use pipespec_model::config::Config;
use pipespec_tune::kill_revive::KillReviveOptions;
use pipespec_tune::report::TuneReport;

use crate::cli::SplitArgs;

/// The cloud's runner, a session open, when `--cloud` is given.
pub fn connect(args: &SplitArgs, config: &Config) -> Result<Option<RemoteBlocks>> {
    let Some(address) = &args.cloud else {
        return Ok(None);
    };
    if args.device_layers >= config.layer_count {
        bail!(
            "--device-layers {}: the model has {} blocks; keep fewer on the device, or tune without --cloud",
            args.device_layers,
            config.layer_count
        );
    }
    let options = RemoteOptions {
        bf16: args.wire_bf16,
        device_layers: args.device_layers,
        retries: args.retries,
        ..RemoteOptions::new(address)
    };
    let remote = RemoteBlocks::connect(options, config)
        .with_context(|| format!("--cloud {address}: opening a session"))?;
    match args.device_layers {
        0 => eprintln!("pipespec tune: the frozen blocks run on the cloud at {address}"),
        n => eprintln!("pipespec tune: blocks 0..{n} run here, the rest on the cloud at {address}"),
    }
    Ok(Some(remote))
}

/// Kill-and-Revive's settings, checked (None without `--kill-revive`).
pub fn kill_revive(args: &SplitArgs) -> Result<Option<KillReviveOptions>> {
    if !args.kill_revive {
        return Ok(None);
    }
    if !(args.keep > 0.0 && args.keep <= 1.0) {
        bail!("--keep must be a share in (0, 1], not {}", args.keep);
    }
    if !(args.revive_ratio.is_finite() && args.revive_ratio >= 0.0) {
        bail!("--revive-ratio must be a number of at least 0");
    }
    if args.kr_warmup_steps == Some(0) || args.kr_review_steps == Some(0) {
        bail!("--kr-warmup-steps and --kr-review-steps must be at least 1");
    }
    Ok(Some(KillReviveOptions {
        keep: args.keep,
        warmup_steps: args.kr_warmup_steps,
        review_steps: args.kr_review_steps,
        revive: !args.no_revive,
        revive_ratio: args.revive_ratio,
    }))
}

/// A share of its all-active figure.
fn share(value: u64, all: u64) -> String {
    if all == 0 {
        return "-".into();
    }
    format!("{:.1}%", 100.0 * value as f64 / all as f64)
}

pub fn print_counters(report: &TuneReport) {
    let c = &report.counters;
    println!(
        "device: {:.2} GFLOP ({} of all-active), cloud: {:.2} GFLOP; active modules per epoch: {:?} ({} kills, {} revivals)",
        c.device_flops as f64 / 1e9,
        share(c.device_flops, c.device_flops_all_active),
        c.cloud_flops as f64 / 1e9,
        c.active_modules,
        c.kills,
        c.revivals
    );
    let link = c.bytes_to_cloud + c.bytes_from_cloud;
    if link > 0 {
        println!(
            "link: {:.1} MB to the cloud, {:.1} MB from it ({} of all-active), {} round trips",
            c.bytes_to_cloud as f64 / 1e6,
            c.bytes_from_cloud as f64 / 1e6,
            share(link, c.bytes_all_active),
            c.round_trips
        );
    }
}
