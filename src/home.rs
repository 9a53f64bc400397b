//! pipespec's home from this process's environment: `$PIPESPEC_HOME`, else
//! `$HOME/.cache/pipespec` (the rule is `pipespec_model::layout`'s, shared with the tests).

use std::path::PathBuf;

/// None when neither variable is set (an empty one counts as unset).
pub fn pipespec_home() -> Option<PathBuf> {
    pipespec_model::layout::home_from_vars(std::env::var_os)
}
