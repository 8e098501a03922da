//! credsync keeps two credential stores for each user in step: the Linux account
//! (`/etc/shadow`, the `system` module) and the application's own record (the
//! `store` module). `change` writes both in one fixed order, `reconcile` repairs
//! drift between them at service start, and `pam_change` follows a change PAM
//! made. `requests` serves what a caller asks, whichever program asked. The
//! programs — the `credsync` command line, `pam_credsync.so`, the `credsyncd`
//! service — are thin crates over this one.

pub mod access;
pub mod account;
pub mod audit;
pub mod change;
pub mod clock;
pub mod config;
pub mod error;
pub mod fault;
pub mod input;
pub mod judge;
pub mod lockout;
pub mod pam_change;
pub mod policy;
pub mod reconcile;
pub mod requests;
pub mod secret;
pub mod status;
pub mod store;
pub mod stores;
pub mod system;
pub mod verify;
