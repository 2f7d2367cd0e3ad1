//! Why the window did not open, or stopped: one type, so a shell maps each case to its own
//! exit status.

use std::fmt;
use std::io;

use pismo_storage::registry::RegistryError;

/// Why [`open`](crate::open) failed.
#[derive(Debug)]
pub enum WindowError {
    /// The model to open or the registry's list failed; an invalid reference is the caller's
    /// mistake ([`RegistryError::is_invalid`]).
    Registry(RegistryError),
    /// The window system refused: no window could be opened, or a frame not shown. The whole
    /// message.
    System(String),
    /// The path of a saved drawing could not be written out (a closed pipe, say).
    Out(io::Error),
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Registry(e) => e.fmt(f),
            Self::System(message) => f.write_str(message),
            Self::Out(e) => write!(f, "cannot write the path of a saved drawing: {e}"),
        }
    }
}

impl std::error::Error for WindowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Registry(e) => Some(e),
            Self::System(_) => None,
            Self::Out(e) => Some(e),
        }
    }
}

impl From<RegistryError> for WindowError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<io::Error> for WindowError {
    fn from(e: io::Error) -> Self {
        Self::Out(e)
    }
}
