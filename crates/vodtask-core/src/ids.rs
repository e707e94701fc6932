//! Identifiers. Task and file ids are random, opaque strings: file URLs are
//! served without authentication, so a file id must not be guessable.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// An app owns tasks, files and (later) an event queue. Internal number;
/// apps are addressed by name and API key from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppId(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(String);

pub const MAX_TASK_ID_BYTES: usize = 128;

impl TaskId {
    /// Wraps a caller-supplied id. Any id of the id alphabet is accepted (an
    /// unknown one is simply not found); it is echoed in messages, so it
    /// must be printable ASCII.
    pub fn parse(field: &str, raw: &str) -> crate::Result<Self> {
        if raw.is_empty() {
            return Err(crate::Error::invalid(field, "must not be empty"));
        }
        crate::limits::check_token(field, raw, MAX_TASK_ID_BYTES)?;
        Ok(TaskId(raw.to_owned()))
    }

    pub fn from_stored(raw: String) -> Self {
        TaskId(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A media file id: 20 decimal digits, like the platform's (about 66 bits of
/// randomness).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileId(String);

impl FileId {
    pub fn generate() -> Self {
        let n: u128 = rand::rng().random_range(10u128.pow(19)..10u128.pow(20));
        FileId(n.to_string())
    }

    pub fn parse(field: &str, raw: &str) -> crate::Result<Self> {
        if raw.is_empty() {
            return Err(crate::Error::invalid(field, "must not be empty"));
        }
        if raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(crate::Error::invalid(
                field,
                "must be a file id (letters and digits, at most 64)",
            ));
        }
        Ok(FileId(raw.to_owned()))
    }

    pub fn from_stored(raw: String) -> Self {
        FileId(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_are_twenty_digits_and_distinct() {
        let a = FileId::generate();
        let b = FileId::generate();
        assert_eq!(a.as_str().len(), 20);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
    }

    #[test]
    fn file_id_parse_rejects_path_characters() {
        assert!(FileId::parse("file_id", "../etc").is_err());
        assert!(FileId::parse("file_id", "").is_err());
        assert!(FileId::parse("file_id", "12345").is_ok());
    }
}
