//! pam_faillock's per-user tally (STUB).
