//! change (STUB)
