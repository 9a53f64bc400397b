//! Which modules read one input (a group: one round trip in a split run) and which modules
//! take part in a pass (the active set).

use std::collections::BTreeSet;

use pipespec_model::lora::LoraTarget;

/// The modules of one layer that read the same input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKind {
    /// q, k and v read the attention norm's output.
    Attention,
    /// o reads the attention's output.
    Output,
    /// gate and up read the FFN norm's output.
    GateUp,
    /// down reads the gated product.
    Down,
}

impl GroupKind {
    /// In the order a layer runs them.
    pub const ALL: [GroupKind; 4] = [
        GroupKind::Attention,
        GroupKind::Output,
        GroupKind::GateUp,
        GroupKind::Down,
    ];

    /// The targets of the group, in the order their deltas sit side by side.
    pub fn targets(self) -> &'static [LoraTarget] {
        match self {
            GroupKind::Attention => &[LoraTarget::Q, LoraTarget::K, LoraTarget::V],
            GroupKind::Output => &[LoraTarget::Output],
            GroupKind::GateUp => &[LoraTarget::Gate, LoraTarget::Up],
            GroupKind::Down => &[LoraTarget::Down],
        }
    }

    /// The group of a layer target (None for the head, which is never hosted).
    pub fn of(target: LoraTarget) -> Option<GroupKind> {
        GroupKind::ALL
            .into_iter()
            .find(|kind| kind.targets().contains(&target))
    }
}

/// The hosted modules (layer, target) that take part in a pass; the rest add nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveSet {
    modules: BTreeSet<(usize, LoraTarget)>,
}

impl ActiveSet {
    pub fn new(modules: impl IntoIterator<Item = (usize, LoraTarget)>) -> ActiveSet {
        ActiveSet {
            modules: modules.into_iter().collect(),
        }
    }

    pub fn contains(&self, layer: usize, target: LoraTarget) -> bool {
        self.modules.contains(&(layer, target))
    }

    /// The group's active targets, in its order.
    pub fn group(&self, layer: usize, kind: GroupKind) -> Vec<LoraTarget> {
        kind.targets()
            .iter()
            .copied()
            .filter(|&t| self.contains(layer, t))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The modules of layers `first` and after.
    pub fn from_layer(&self, first: usize) -> ActiveSet {
        ActiveSet {
            modules: self
                .modules
                .iter()
                .copied()
                .filter(|m| m.0 >= first)
                .collect(),
        }
    }

    /// Every active module, by layer then target.
    pub fn iter(&self) -> impl Iterator<Item = (usize, LoraTarget)> + '_ {
        self.modules.iter().copied()
    }
}
