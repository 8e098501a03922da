//! reconcile (STUB)
