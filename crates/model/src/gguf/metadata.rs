//! Typed metadata lookups on an open file: a missing key or one of the wrong type is an error
//! naming the file, the key and the types.

use super::{GgufFile, Value};
use crate::error::{ModelError, Result};

impl GgufFile {
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
