//! An app's signing secrets: the current one, and during a rotation the
//! previous one until its overlap ends, so that receivers can switch keys
//! without losing a callback.

use serde::{Deserialize, Serialize};

use super::signing::SigningSecret;
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// How long the previous secret keeps signing after a rotation.
pub const DEFAULT_OVERLAP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secrets {
    /// `whsec_…`; empty until the app first needs one.
    pub current: String,
    pub previous: Option<Previous>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Previous {
    pub secret: String,
    pub until: Timestamp,
}

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// A fresh secret for an app that has none.
    pub fn generate() -> Secrets {
        Secrets {
            current: SigningSecret::generate().expose(),
            previous: None,
        }
    }

    /// A new current secret; the old one signs too until `until`.
    pub fn rotate(&mut self, until: Timestamp) {
        let old = std::mem::replace(&mut self.current, SigningSecret::generate().expose());
        self.previous = (!old.is_empty()).then_some(Previous { secret: old, until });
    }

    /// The secrets that sign a callback sent at `now`, current first.
    pub fn in_force(&self, now: Timestamp) -> Result<Vec<SigningSecret>> {
        let mut out = vec![parse(&self.current)?];
        if let Some(p) = &self.previous
            && p.until > now
        {
            out.push(parse(&p.secret)?);
        }
        Ok(out)
    }
}

fn parse(text: &str) -> Result<SigningSecret> {
    SigningSecret::parse("signing_secret", text)
        .map_err(|e| Error::Storage(format!("stored signing secret: {e}").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_overlaps_then_ends() {
        let now = crate::time::now();
        let mut s = Secrets::generate();
        let first = s.current.clone();
        s.rotate(now + chrono::Duration::hours(24));
        assert_ne!(s.current, first);
        let signing = s.in_force(now).unwrap();
        assert_eq!(signing.len(), 2);
        assert_eq!(signing[1].expose(), first);
        assert_eq!(
            s.in_force(now + chrono::Duration::hours(25)).unwrap().len(),
            1
        );
    }
}
