//! Legacy (seed) protocol records.
