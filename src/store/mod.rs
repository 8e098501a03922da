//! store (STUB)
