//! DLoRA as a user runs it: `pipespec tune-cloud` and `pipespec tune --cloud` as two processes on
//! loopback give the adapter local tuning gives, with and without Kill-and-Revive and with a
//! block kept on the device, and a device that cannot reach its cloud says so and writes nothing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{json, run, stderr, tiny_model};

/// The cloud process, killed when dropped.
struct Cloud {
    child: Child,
    address: String,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_cloud(model: &str) -> Cloud {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipespec"))
        .args([
            "tune-cloud",
            "--model",
            model,
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pipespec tune-cloud starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the cloud announces its address")
            .expect("stderr is text");
        if line.contains("serving the") {
            break line
                .rsplit(" on ")
                .next()
                .expect("an address follows")
                .trim()
                .to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Cloud { child, address }
}

/// Eight prompt/completion lines, a few steps' worth for the tiny model.
fn write_data(dir: &Path) -> String {
    let path = dir.join("train.jsonl");
    let lines: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"prompt": "case {i}:", "completion": " {}"}}"#,
                i * 7 % 5
            )
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs `pipespec tune` with the shared flags and `extra`; the report and the adapter's bytes.
fn tune(model: &str, data: &str, out: &Path, extra: &[&str]) -> (serde_json::Value, Vec<u8>) {
    let mut args = vec![
        "tune",
        "--model",
        model,
        "--data",
        data,
        "--eval",
        data,
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "3",
        "--batch",
        "2",
        "--rank",
        "4",
        "--lr",
        "1e-2",
        "--threads",
        "2",
        "--json",
    ];
    args.extend(extra);
    let report = json(&run(&args, ""));
    (report, std::fs::read(out).expect("the adapter is written"))
}

#[test]
fn two_processes_train_the_adapter_local_tuning_trains() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 41);
    let model = model.to_str().unwrap();
    let data = write_data(dir.path());
    let cloud = start_cloud(model);
    let kill_revive = [
        "--kill-revive",
        "--keep",
        "0.25",
        "--kr-warmup-steps",
        "2",
        "--kr-review-steps",
        "3",
    ];
    let mut all_active = None;
    for flags in [&[][..], &kill_revive[..]] {
        // One output path for both: the adapter's name is the file's stem.
        let out = dir.path().join("adapter.gguf");
        let (local, local_adapter) = tune(model, &data, &out, flags);
        let mut split_flags = vec!["--cloud", cloud.address.as_str()];
        split_flags.extend(flags);
        let (split, split_adapter) = tune(model, &data, &out, &split_flags);
        for key in [
            "train_loss",
            "eval_loss_after",
            "device_flops",
            "device_flops_all_active",
            "active_modules",
            "kills",
            "revivals",
        ] {
            assert_eq!(split[key], local[key], "{key} ({flags:?})");
        }
        assert!(
            split_adapter == local_adapter,
            "adapters differ ({flags:?})"
        );
        all_active.get_or_insert((local.clone(), local_adapter));
        assert_eq!(local["bytes_to_cloud"], 0, "local tuning crossed a link");
        let sent = split["bytes_to_cloud"].as_u64().unwrap();
        let received = split["bytes_from_cloud"].as_u64().unwrap();
        let all_active = split["bytes_all_active"].as_u64().unwrap();
        assert!(sent > 0 && received > 0, "{split}");
        assert!(split["round_trips"].as_u64().unwrap() > 0, "{split}");
        let device = split["device_flops"].as_u64().unwrap();
        let device_all = split["device_flops_all_active"].as_u64().unwrap();
        if flags.is_empty() {
            assert_eq!(device, device_all);
            assert_eq!(split["kills"], 0);
        } else {
            assert!(split["kills"].as_u64().unwrap() > 0, "{split}");
            assert!(device < device_all, "{device} >= {device_all}");
            assert!(sent + received < all_active, "{split}");
        }
    }
    // The first block kept on the device: the same adapter, operations moved to the device.
    let (local, local_adapter) = all_active.expect("the all-active run ran");
    let out = dir.path().join("adapter.gguf");
    let flags = ["--cloud", cloud.address.as_str(), "--device-layers", "1"];
    let (kept, kept_adapter) = tune(model, &data, &out, &flags);
    assert!(
        kept_adapter == local_adapter,
        "adapters differ (--device-layers 1)"
    );
    assert_eq!(kept["train_loss"], local["train_loss"]);
    let flops = |report: &serde_json::Value, key: &str| report[key].as_u64().unwrap();
    assert!(flops(&kept, "device_flops") > flops(&local, "device_flops"));
    assert!(flops(&kept, "cloud_flops") < flops(&local, "cloud_flops"));
    let refused = run(
        &[
            "tune",
            "--model",
            model,
            "--data",
            &data,
            "--out",
            out.to_str().unwrap(),
            "--cloud",
            cloud.address.as_str(),
            "--device-layers",
            "2",
        ],
        "",
    );
    let message = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{message}");
    assert!(
        message.contains("--device-layers 2: the model has 2 blocks"),
        "{message}"
    );
}

#[test]
fn a_device_without_its_cloud_says_so_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 42);
    let data = write_data(dir.path());
    let out = dir.path().join("a.gguf");
    // Port 1 on loopback: nothing listens there.
    let output = run(
        &[
            "tune",
            "--model",
            model.to_str().unwrap(),
            "--data",
            &data,
            "--out",
            out.to_str().unwrap(),
            "--cloud",
            "127.0.0.1:1",
            "--retries",
            "1",
        ],
        "",
    );
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!out.exists(), "an adapter was written");
}

#[test]
fn a_cloud_killed_mid_run_leaves_the_adapter_trained_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 43);
    let model = model.to_str().unwrap();
    let data = write_data(dir.path());
    let mut cloud = start_cloud(model);
    let out = dir.path().join("a.gguf");
    let mut device = Command::new(env!("CARGO_BIN_EXE_pipespec"))
        .args([
            "tune",
            "--model",
            model,
            "--data",
            &data,
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "2000",
            "--batch",
            "2",
            "--rank",
            "4",
            "--threads",
            "1",
            "--retries",
            "0",
            "--cloud",
            cloud.address.as_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pipespec tune starts");
    let mut lines = BufReader::new(device.stderr.take().expect("stderr is piped")).lines();
    for line in lines.by_ref() {
        if line.expect("stderr is text").contains("step 1/") {
            break;
        }
    }
    cloud.child.kill().unwrap();
    let message: Vec<String> = lines.map_while(Result::ok).collect();
    let message = message.join("\n");
    let status = device.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{message}");
    assert!(message.contains("training stopped after step"), "{message}");
    let partial = dir.path().join("a.partial.gguf");
    assert!(message.contains("a.partial.gguf"), "{message}");
    assert!(
        !out.exists(),
        "the unfinished adapter was written as the finished one"
    );
    let info = run(&["info", partial.to_str().unwrap()], "");
    assert!(info.status.success(), "{}", stderr(&info));
}
