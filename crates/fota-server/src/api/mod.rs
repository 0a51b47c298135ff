//! HTTP handlers, one module per audience.

pub mod device;
pub mod legacy;
pub mod misc;
pub mod operator;
