//! One module per subcommand group.

pub(crate) mod flash;
pub(crate) mod image;
pub(crate) mod partitions;
