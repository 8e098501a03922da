//! Reading passwords and batches: the core's, shared with credsync-fleet.
pub use credsync_core::input::*;
