//! Traffic logs (being written by a helper).
