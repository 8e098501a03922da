//! config (STUB)
