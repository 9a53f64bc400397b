//! Parsing a mapped GGUF file: header, metadata and tensor directory, every offset, shape and
//! size checked against the file before any tensor is used.

use std::collections::HashMap;
use std::path::PathBuf;

use memmap2::Mmap;

use super::reader::Reader;
use super::{dtype_from_id, GgufFile, TensorInfo};
use crate::error::{ModelError, Result};

impl GgufFile {
    pub(super) fn parse(path: PathBuf, mmap: Mmap) -> Result<GgufFile> {
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
}
