//! A bounds-checked reader for GGUF v2/v3 files: metadata, tensor directory, and zero-copy tensor bytes from a shared memory map.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use candle_core::quantized::GgmlDType;
use memmap2::Mmap;

use crate::error::{ModelError, Result};

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// The GGUF name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        }
    }

    /// Any non-negative integer value as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value as i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any numeric value as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
}

/// A tensor's entry in the file's directory.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in GGUF order: `dims[0]` is the innermost (contiguous) one.
    pub dims: Vec<usize>,
    pub dtype: GgmlDType,
    /// Byte offset of the data from the start of the file.
    pub offset: usize,
    pub byte_len: usize,
}

impl TensorInfo {
    pub fn element_count(&self) -> usize {
        self.dims.iter().product()
    }
}

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

/// The ggml tensor type with the given GGUF id, if this crate knows it.
pub fn dtype_from_id(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// The GGUF id of a ggml tensor type.
pub fn dtype_id(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
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

    fn parse(path: PathBuf, mmap: Mmap) -> Result<GgufFile> {
        let mut reader = Reader {
            bytes: &mmap,
            position: 0,
            path: &path,
        };
        let magic = reader.take(4).map_err(|_| ModelError::NotGguf {
            path: path.clone(),
            magic: mmap[..mmap.len().min(4)].to_vec(),
        })?;
        if magic != b"GGUF" {
            return Err(ModelError::NotGguf {
                path: path.clone(),
                magic: magic.to_vec(),
            });
        }
        let version = reader.u32()?;
        if version != 2 && version != 3 {
            return Err(ModelError::UnsupportedVersion {
                path: path.clone(),
                version,
            });
        }
        let tensor_count = reader.count(8, "tensor count")?;
        let metadata_count = reader.count(8, "metadata count")?;
        let mut metadata = HashMap::with_capacity(metadata_count);
        let mut metadata_order = Vec::with_capacity(metadata_count);
        for _ in 0..metadata_count {
            let key = reader.string()?;
            let value_type = reader.u32()?;
            let value = reader.value(value_type, 0)?;
            metadata_order.push(key.clone());
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => {
                    return Err(reader.corrupt(format!("invalid general.alignment {v:?}")));
                }
            },
        };
        let mut raw_tensors = Vec::with_capacity(tensor_count);
        for _ in 0..tensor_count {
            let name = reader.string()?;
            let n_dims = reader.u32()? as usize;
            if n_dims == 0 || n_dims > 4 {
                return Err(reader.corrupt(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = reader.u64()?;
                dims.push(usize::try_from(d).map_err(|_| {
                    reader.corrupt(format!("tensor `{name}` dimension {d} too large"))
                })?);
            }
            let type_id = reader.u32()?;
            let offset = reader.u64()?;
            raw_tensors.push((name, dims, type_id, offset));
        }
        let data_start = reader.position.div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw_tensors.len());
        let mut tensor_index = HashMap::with_capacity(raw_tensors.len());
        for (name, dims, type_id, offset) in raw_tensors {
            let dtype =
                dtype_from_id(type_id).ok_or_else(|| ModelError::UnsupportedTensorType {
                    path: path.clone(),
                    name: name.clone(),
                    dtype: format!("ggml type id {type_id}"),
                })?;
            let elements = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| {
                    reader.corrupt(format!("tensor `{name}` shape {dims:?} overflows"))
                })?;
            if dims[0] % dtype.block_size() != 0 {
                return Err(reader.corrupt(format!(
                    "tensor `{name}` row length {} is not a multiple of the {dtype:?} block size {}",
                    dims[0],
                    dtype.block_size()
                )));
            }
            let byte_len = elements / dtype.block_size() * dtype.type_size();
            let start = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(data_start))
                .filter(|s| s % alignment == 0)
                .ok_or_else(|| {
                    reader.corrupt(format!("tensor `{name}` has misaligned offset {offset}"))
                })?;
            if start
                .checked_add(byte_len)
                .is_none_or(|end| end > mmap.len())
            {
                return Err(ModelError::Corrupt {
                    path: path.clone(),
                    offset: start,
                    what: format!(
                        "tensor `{name}` ({byte_len} bytes) extends past the end of the file ({} bytes): the file is truncated",
                        mmap.len()
                    ),
                });
            }
            tensor_index.insert(name.clone(), tensors.len());
            tensors.push(TensorInfo {
                name,
                dims,
                dtype,
                offset: start,
                byte_len,
            });
        }
        Ok(GgufFile {
            path,
            version,
            metadata,
            metadata_order,
            tensors,
            tensor_index,
            mmap,
        })
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

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn missing(&self, key: &str) -> ModelError {
        ModelError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        }
    }

    fn wrong_type(&self, key: &str, value: &Value, expected: &'static str) -> ModelError {
        ModelError::WrongType {
            path: self.path.clone(),
            key: key.to_string(),
            found: value.type_name(),
            expected,
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(self.wrong_type(key, v, "string")),
            None => Err(self.missing(key)),
        }
    }

    pub fn get_usize(&self, key: &str) -> Result<usize> {
        let value = self.get(key).ok_or_else(|| self.missing(key))?;
        value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.wrong_type(key, value, "unsigned integer"))
    }

    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let value = self.get(key).ok_or_else(|| self.missing(key))?;
        value
            .as_f64()
            .ok_or_else(|| self.wrong_type(key, value, "number"))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.wrong_type(key, v, "bool")),
            None => Err(self.missing(key)),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<&[Value]> {
        match self.get(key) {
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(self.wrong_type(key, v, "array")),
            None => Err(self.missing(key)),
        }
    }

    /// An array of strings (token lists, merges).
    pub fn get_string_array(&self, key: &str) -> Result<Vec<&str>> {
        self.get_array(key)?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                other => Err(self.wrong_type(key, other, "array of strings")),
            })
            .collect()
    }

    /// `Ok(None)` when the key is absent; an error only when present with the wrong type.
    pub fn optional<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a Self, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.metadata.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A cursor over the file's bytes whose every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    path: &'a Path,
}

const MAX_NESTING: usize = 4;

impl<'a> Reader<'a> {
    fn corrupt(&self, what: String) -> ModelError {
        ModelError::Corrupt {
            path: self.path.to_path_buf(),
            offset: self.position,
            what,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .position
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                self.corrupt(format!(
                    "needed {n} more bytes but the file ends at {}: the file is truncated",
                    self.bytes.len()
                ))
            })?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A u64 element count, checked against the bytes left (each element takes at least `min_size`).
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.position) as u64;
        if n.saturating_mul(min_size.max(1) as u64) > left {
            return Err(self.corrupt(format!(
                "{what} {n} cannot fit in the {left} bytes left: the file is corrupt or truncated"
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String> {
        let len = self.count(1, "string length")?;
        let bytes = self.take(len)?;
        // GGUF strings are UTF-8; some converters wrote invalid bytes into token lists, keep them lossily.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, value_type: u32, depth: usize) -> Result<Value> {
        Ok(match value_type {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(self.array::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(self.corrupt("arrays nested too deeply".into()));
                }
                let element_type = self.u32()?;
                let min_size = match element_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    _ => 8,
                };
                let len = self.count(min_size, "array length")?;
                let mut values = Vec::with_capacity(len);
                for _ in 0..len {
                    values.push(self.value(element_type, depth + 1)?);
                }
                Value::Array(values)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(self.corrupt(format!("unknown metadata value type {other}"))),
        })
    }
}
