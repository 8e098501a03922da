//! credsync keeps two credential stores for each user in step: the Linux account
//! (`/etc/shadow`, the `system` module) and the application's own record (the
//! `store` module). `change` writes both in one fixed order, `reconcile` repairs
//! drift between them at service start, and `cli` is the front door.

pub mod access;
pub mod account;
pub mod audit;
pub mod change;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod fault;
pub mod judge;
pub mod lockout;
pub mod pam_change;
pub mod policy;
pub mod reconcile;
pub mod secret;
pub mod store;
pub mod stores;
pub mod system;
pub mod verify;
