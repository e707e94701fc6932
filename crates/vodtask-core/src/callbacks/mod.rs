//! HTTP callbacks (PUSH mode). This release has the building blocks that
//! must be exact before anything is sent: Standard Webhooks signing and
//! verification, and the address policy that keeps callbacks away from
//! internal networks. The delivery worker that uses them comes next.

pub mod address;
pub mod signing;
