//! error (STUB)
