//! A llama-family model: configuration and weights, loaded (and repacked) once per file and
//! shared by every session that runs it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::kernels::CpuPath;
use crate::rope::Rope;
use crate::weights::{LoadOptions, WeightLoader, Weights};

/// What loading a model cost.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    /// The kernels' CPU path.
    pub cpu: CpuPath,
    /// Whether quantized matrices were repacked.
    pub packed: bool,
    /// Wall time of checking and repacking the weights (the map itself is lazy).
    pub seconds: f64,
    /// Bytes of weights this process owns (repacked or copied); the rest stays mapped.
    pub owned_bytes: usize,
}

/// A loaded model: configuration and weights, shareable across threads and sessions.
pub struct Model {
    pub config: Config,
    pub(crate) weights: Weights,
    pub(crate) rope: Rope,
    file: Arc<GgufFile>,
    report: LoadReport,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("report", &self.report)
            .finish()
    }
}

type Loaded = Mutex<HashMap<(usize, LoadOptions), Weak<Model>>>;

/// Models by file and options, so that a second handle on a file (a draft sharing the target's
/// weights) shares the first one's repacked matrices instead of packing them again.
fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Model {
    /// Opens a GGUF file with the process's kernels (`PIPESPEC_CPU`, else the best this CPU
    /// has), sharing the model already loaded from the same file, if any.
    pub fn load(path: &Path) -> Result<Arc<Model>> {
        Self::load_with(path, LoadOptions::selected()?)
    }

    /// `load` with the CPU path and packing chosen by the caller (tests compare paths).
    pub fn load_with(path: &Path, options: LoadOptions) -> Result<Arc<Model>> {
        Self::from_file(GgufFile::open(path)?, options)
    }

    /// Builds (or shares) the model of an open file, checking every tensor.
    pub fn from_file(file: Arc<GgufFile>, options: LoadOptions) -> Result<Arc<Model>> {
        if !options.cpu.available() {
            return Err(ModelError::Kernel(format!(
                "CPU path {} needs {}, which this CPU lacks",
                options.cpu,
                options.cpu.features().join(", ")
            )));
        }
        if file.get_str("general.type").ok() == Some("adapter") {
            return Err(ModelError::Adapter {
                path: file.path().to_path_buf(),
                what: "this file is an adapter, not a model: give it with --lora beside its base model".into(),
            });
        }
        // The file handle is shared per path, so its address names the file while it is open.
        let key = (Arc::as_ptr(&file) as usize, options);
        let mut models = loaded().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(model) = models.get(&key).and_then(Weak::upgrade) {
            return Ok(model);
        }
        let start = Instant::now();
        let embedding =
            file.tensor("token_embd.weight")
                .ok_or_else(|| ModelError::MissingTensor {
                    path: file.path().to_path_buf(),
                    name: "token_embd.weight".into(),
                })?;
        let vocab_size = embedding.dims.get(1).copied().unwrap_or(0);
        let config = Config::from_gguf(&file, vocab_size)?;
        let weights = WeightLoader::new(&file, &config, options).load()?;
        let rope = Rope::new(&config, weights.rope_frequency_factors.as_deref());
        let report = LoadReport {
            cpu: options.cpu,
            packed: options.pack,
            seconds: start.elapsed().as_secs_f64(),
            owned_bytes: weights.owned_bytes(),
        };
        let model = Arc::new(Model {
            config,
            weights,
            rope,
            file,
            report,
        });
        models.retain(|_, weak| weak.strong_count() > 0);
        models.insert(key, Arc::downgrade(&model));
        Ok(model)
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// Bytes of weight data in the file.
    pub fn weight_bytes(&self) -> usize {
        self.file.tensors.iter().map(|t| t.byte_len).sum()
    }

    /// What loading cost: path, time and owned memory.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }
}

/// This process's resident memory in bytes (`VmRSS` of Linux's `/proc/self/status`), if the
/// OS tells.
pub fn resident_bytes() -> Option<usize> {
    process_status_bytes("VmRSS:")
}

/// This process's peak resident memory in bytes (`VmHWM`), if the OS tells.
pub fn peak_resident_bytes() -> Option<usize> {
    process_status_bytes("VmHWM:")
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn process_status_bytes(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
