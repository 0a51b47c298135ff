//! ESP-IDF on-flash formats.
