//! A bounds-checked reader for GGUF v2/v3 files: metadata, tensor directory, and zero-copy tensor bytes from a shared memory map.

mod metadata;
mod parse;
mod reader;
mod tensor;
mod value;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use memmap2::Mmap;

use crate::error::{ModelError, Result};

pub use tensor::{dtype_from_id, dtype_id, TensorInfo};
pub use value::Value;

/// An opened GGUF file: parsed metadata and tensor directory, with the bytes memory-mapped once.
pub struct GgufFile {
    path: PathBuf,
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    /// Metadata keys in file order (for `info`).
    pub metadata_order: Vec<String>,
    pub tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    mmap: Mmap,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Open files by canonical path, so that a second handle on one file shares the first one's map.
fn open_files() -> &'static Mutex<HashMap<PathBuf, Weak<GgufFile>>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<GgufFile>>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(HashMap::new()))
}

impl GgufFile {
    /// Opens a GGUF file, or returns the already open handle on the same file.
    pub fn open(path: &Path) -> Result<Arc<GgufFile>> {
        let open_error = |reason| ModelError::Open {
            path: path.to_path_buf(),
            reason,
        };
        let canonical = path.canonicalize().map_err(open_error)?;
        let mut files = open_files().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = files.get(&canonical).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let file = File::open(&canonical).map_err(open_error)?;
        // SAFETY: the map is read-only; a model file changed underneath a running process is
        // outside what any inference engine can defend against (llama.cpp maps the same way).
        let mmap = unsafe { Mmap::map(&file) }.map_err(open_error)?;
        let parsed = Arc::new(Self::parse(path.to_path_buf(), mmap)?);
        files.retain(|_, weak| weak.strong_count() > 0);
        files.insert(canonical, Arc::downgrade(&parsed));
        Ok(parsed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of a tensor, straight from the memory map.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        &self.mmap[info.offset..info.offset + info.byte_len]
    }

    /// The whole file, as mapped.
    pub fn mapped_bytes(&self) -> &[u8] {
        &self.mmap
    }

    /// Drops the mapped pages wholly inside a tensor's bytes from this process's resident
    /// memory (after the tensor was copied, say repacked); they are read again from the file if
    /// touched later. Best effort: an OS that refuses keeps them.
    pub fn release(&self, info: &TensorInfo) {
        const PAGE: usize = 4096;
        let start = info.offset.next_multiple_of(PAGE);
        let end = (info.offset + info.byte_len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the map is read-only and file-backed, so dropping its pages loses nothing:
            // a later read faults them back in from the file.
            let _ = unsafe {
                self.mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }
}
