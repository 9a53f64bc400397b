//! Paths every crate's tests share: pipespec's home from the environment, the default model
//! `pipespec fetch` puts there and the test data `scripts/fetch-test-data.sh` puts there. A
//! missing file fails the test with the command that provides it (missing data is no skip).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::layout;

/// `$PIPESPEC_HOME`, else `$HOME/.cache/pipespec`.
pub fn pipespec_home() -> PathBuf {
    match layout::home_from_vars(std::env::var_os) {
        Some(home) => home,
        None => panic!(
            "neither PIPESPEC_HOME nor HOME is set: set PIPESPEC_HOME to the folder that holds \
             pipespec's models and test data"
        ),
    }
}

/// The default model, which must be there: run `pipespec fetch` first (scripts/test.sh does).
pub fn default_model() -> PathBuf {
    default_model_under(&pipespec_home())
}

/// `<home>/testdata`, which `scripts/fetch-test-data.sh` fills.
pub fn testdata_dir() -> PathBuf {
    testdata_in(&pipespec_home())
}

/// A file under [`testdata_dir`], which must be there.
pub fn testdata_file(relative: impl AsRef<Path>) -> PathBuf {
    testdata_file_under(&pipespec_home(), relative.as_ref())
}

fn default_model_under(home: &Path) -> PathBuf {
    require(
        layout::default_model_in(home),
        "run `pipespec fetch` (scripts/test.sh does) before the tests",
    )
}

fn testdata_file_under(home: &Path, relative: &Path) -> PathBuf {
    require(
        testdata_in(home).join(relative),
        "run scripts/fetch-test-data.sh (it fills $PIPESPEC_HOME, default ~/.cache/pipespec)",
    )
}

fn testdata_in(home: &Path) -> PathBuf {
    home.join("testdata")
}

fn require(path: PathBuf, remedy: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "the test needs {}, which is missing: {remedy}",
        path.display()
    );
    path
}

/// A compute pool of `threads` threads.
pub fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "which is missing: run `pipespec fetch`")]
    fn a_missing_default_model_says_to_run_fetch() {
        let home = tempfile::tempdir().unwrap();
        default_model_under(home.path());
    }

    #[test]
    #[should_panic(expected = "which is missing: run scripts/fetch-test-data.sh")]
    fn missing_test_data_says_how_to_fetch_it() {
        let home = tempfile::tempdir().unwrap();
        testdata_file_under(home.path(), Path::new("llama.cpp-vocab/none.gguf"));
    }

    #[test]
    fn present_files_are_returned_where_they_are() {
        let home = tempfile::tempdir().unwrap();
        let model = layout::default_model_in(home.path());
        std::fs::create_dir_all(model.parent().unwrap()).unwrap();
        std::fs::write(&model, b"GGUF").unwrap();
        assert_eq!(default_model_under(home.path()), model);
        let data = home.path().join("testdata").join("a.inp");
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::write(&data, b"").unwrap();
        assert_eq!(testdata_file_under(home.path(), Path::new("a.inp")), data);
    }
}
