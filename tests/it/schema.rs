//! summary.json validates against the committed JSON Schema.
