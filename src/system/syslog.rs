//! Syslog (STUB).
