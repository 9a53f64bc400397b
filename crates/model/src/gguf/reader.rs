//! A bounds-checked cursor over a GGUF file's bytes: integers, strings, counts checked
//! against what is left, and metadata values (arrays nested at most four deep).

use std::path::Path;

use super::Value;
use crate::error::{ModelError, Result};

/// A cursor over the file's bytes whose every read is bounds-checked.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) position: usize,
    pub(super) path: &'a Path,
}

const MAX_NESTING: usize = 4;

impl<'a> Reader<'a> {
    pub(super) fn corrupt(&self, what: String) -> ModelError {
        ModelError::Corrupt {
            path: self.path.to_path_buf(),
            offset: self.position,
            what,
        }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
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

    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A u64 element count, checked against the bytes left (each element takes at least `min_size`).
    pub(super) fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.position) as u64;
        if n.saturating_mul(min_size.max(1) as u64) > left {
            return Err(self.corrupt(format!(
                "{what} {n} cannot fit in the {left} bytes left: the file is corrupt or truncated"
            )));
        }
        Ok(n as usize)
    }

    pub(super) fn string(&mut self) -> Result<String> {
        let len = self.count(1, "string length")?;
        let bytes = self.take(len)?;
        // GGUF strings are UTF-8; some converters wrote invalid bytes into token lists, keep them lossily.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    pub(super) fn value(&mut self, value_type: u32, depth: usize) -> Result<Value> {
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
