//! Message handles: `<epoch>.<event seq>.<delivery token>`, opaque to
//! consumers. A handle names one delivery; the next delivery of the same
//! event gets a new token and the old handle stops working. The epoch names
//! the server process that issued it (leases do not outlive a restart).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgHandle {
    pub epoch: u32,
    pub seq: i64,
    pub token: u64,
}

impl MsgHandle {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}.{}", self.epoch, self.seq, self.token))
    }

    /// None for anything that is not a handle vodtask issued.
    pub fn decode(raw: &str) -> Option<MsgHandle> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
        let mut parts = text.split('.');
        let handle = MsgHandle {
            epoch: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            token: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let h = MsgHandle {
            epoch: 9,
            seq: 42,
            token: 3,
        };
        assert_eq!(MsgHandle::decode(&h.encode()), Some(h));
        assert_eq!(MsgHandle::decode("%%"), None);
        assert_eq!(MsgHandle::decode(&URL_SAFE_NO_PAD.encode("1.x.y")), None);
        assert_eq!(MsgHandle::decode(&URL_SAFE_NO_PAD.encode("1.2.3.4")), None);
    }
}
