//! audit (STUB)
