//! DLoRA's counters: the operations each side ran, the bytes and round trips of the link, the
//! modules active per epoch, and what the same steps would have cost with every module active.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::modules::{GroupKind, ModuleBank};

/// Totals over the training steps (evaluation excluded).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counters {
    /// Operations of the device: its LoRA modules (forward, backward, activity norms), the
    /// output head and the blocks it runs itself (`--device-layers`); element-wise work and
    /// the optimizer are not counted.
    pub device_flops: u64,
    /// Operations of the frozen blocks (products, norms, rotary, attention, revival sketches).
    pub cloud_flops: u64,
    /// Bytes the device sent, counted at the transport (0 when the blocks run in process).
    pub bytes_to_cloud: u64,
    /// Bytes the device received, counted at the transport.
    pub bytes_from_cloud: u64,
    /// Request/reply exchanges between the two (module forward, module backward, the head).
    pub round_trips: u64,
    /// Modules active at the end of each epoch.
    pub active_modules: Vec<usize>,
    /// `device_flops` had every module trained in every step.
    pub device_flops_all_active: u64,
    /// The measured bytes plus those of the killed modules' inputs, deltas and gradients.
    pub bytes_all_active: u64,
    /// Modules killed and revived over the run (a module may count several times).
    pub kills: usize,
    pub revivals: usize,
}

/// Bytes a value takes on the wire as f32.
pub const WIRE_VALUE_BYTES: u64 = 4;

/// The payload values the killed modules of `bank` from `first_layer` on (those before it run
/// on the device) would have added to a step over `rows` tokens: each one's deltas (and their
/// gradient when training), and a group's input (and its gradient) when none of the group is
/// active. Message framing is not included; times the bytes per value, that is the traffic.
pub fn killed_module_values(
    bank: &ModuleBank,
    rows: usize,
    train: bool,
    first_layer: usize,
) -> u64 {
    let (all, active) = (bank.all(), bank.active());
    let params = bank.params();
    let directions = if train { 2 } else { 1 };
    let layers: BTreeSet<usize> = all
        .iter()
        .map(|(l, _)| l)
        .filter(|&l| l >= first_layer)
        .collect();
    let mut values = 0u64;
    for layer in layers {
        for kind in GroupKind::ALL {
            let hosted = all.group(layer, kind);
            let live = active.group(layer, kind);
            let mut n_in = 0;
            for &target in &hosted {
                if let Some(m) = params.get(Some(layer), target) {
                    n_in = m.n_in;
                    if !live.contains(&target) {
                        values += (rows * m.n_out) as u64 * directions;
                    }
                }
            }
            if !hosted.is_empty() && live.is_empty() {
                values += (rows * n_in) as u64 * directions;
            }
        }
    }
    values
}
