//! Where pipespec keeps its files: `$PIPESPEC_HOME`, else `$HOME/.cache/pipespec` (one rule for the CLI and every test).

use std::path::PathBuf;

/// File name of the default model under `models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// pipespec's home from the environment; None when neither variable is set (an empty one counts as unset).
pub fn pipespec_home() -> Option<PathBuf> {
    home_from(
        std::env::var_os("PIPESPEC_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// The rule itself, apart from the process environment so it can be tested.
pub fn home_from(pipespec_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    match (pipespec_home, home) {
        (Some(dir), _) if !dir.as_os_str().is_empty() => Some(dir),
        (_, Some(home)) if !home.as_os_str().is_empty() => {
            Some(home.join(".cache").join("pipespec"))
        }
        _ => None,
    }
}

/// `<home>/models/SmolLM2-135M-Instruct.Q4_1.gguf`, where `pipespec fetch` puts the default model.
pub fn default_model_path() -> Option<PathBuf> {
    pipespec_home().map(|home| home.join("models").join(DEFAULT_MODEL_FILE))
}
