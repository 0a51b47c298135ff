//! One module per subcommand group.

pub(crate) mod emulate;
pub(crate) mod flash;
pub(crate) mod image;
pub(crate) mod keys;
pub(crate) mod partitions;
pub(crate) mod server;
