//! Redaction (being written by a helper).
