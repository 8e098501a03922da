//! Process hygiene for setuid runs (STUB).
