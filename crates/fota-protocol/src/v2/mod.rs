//! v2 protocol records.
