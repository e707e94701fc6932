//! Message handles: `<event seq>.<delivery token>`, opaque to consumers. A
//! handle names one delivery; the next delivery of the same event gets a new
//! token and the old handle stops working.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgHandle {
    pub seq: i64,
    pub token: i64,
}

impl MsgHandle {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.seq, self.token))
    }

    /// None for anything that is not a handle vodtask issued.
    pub fn decode(raw: &str) -> Option<MsgHandle> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
        let (seq, token) = text.split_once('.')?;
        Some(MsgHandle {
            seq: seq.parse().ok()?,
            token: token.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let h = MsgHandle { seq: 42, token: 3 };
        assert_eq!(MsgHandle::decode(&h.encode()), Some(h));
        assert_eq!(MsgHandle::decode("%%"), None);
        assert_eq!(MsgHandle::decode(&URL_SAFE_NO_PAD.encode("x.y")), None);
    }
}
