//! Where pipespec keeps its files, as a rule apart from the process environment: its home
//! (`$PIPESPEC_HOME`, else `$HOME/.cache/pipespec`) and the default model's place in it. The
//! binary and the test helpers hand in the environment; the library never reads it itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// File name of the default model under `models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// pipespec's home from the variables `var` looks up (pass `std::env::var_os`); None when
/// neither `PIPESPEC_HOME` nor `HOME` is set (an empty one counts as unset).
pub fn home_from_vars(var: impl Fn(&'static str) -> Option<OsString>) -> Option<PathBuf> {
    home_from(
        var("PIPESPEC_HOME").map(PathBuf::from),
        var("HOME").map(PathBuf::from),
    )
}

/// The rule itself: `pipespec_home` when set and not empty, else `<home>/.cache/pipespec`.
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
pub fn default_model_in(home: &Path) -> PathBuf {
    home.join("models").join(DEFAULT_MODEL_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn pipespec_home_wins_over_home_unless_it_is_empty() {
        let both = [("PIPESPEC_HOME", "/p"), ("HOME", "/h")];
        assert_eq!(home_from_vars(vars(&both)), Some(PathBuf::from("/p")));
        let empty = [("PIPESPEC_HOME", ""), ("HOME", "/h")];
        assert_eq!(
            home_from_vars(vars(&empty)),
            Some(PathBuf::from("/h/.cache/pipespec"))
        );
        let home_only = [("HOME", "/h")];
        assert_eq!(
            home_from_vars(vars(&home_only)),
            Some(PathBuf::from("/h/.cache/pipespec"))
        );
    }

    #[test]
    fn no_home_at_all_is_none() {
        assert_eq!(home_from_vars(vars(&[])), None);
        assert_eq!(home_from_vars(vars(&[("HOME", "")])), None);
        assert_eq!(home_from(Some(PathBuf::new()), None), None);
    }

    #[test]
    fn the_default_model_lives_under_models() {
        assert_eq!(
            default_model_in(Path::new("/p")),
            PathBuf::from("/p/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
    }
}
