//! Why a store operation failed.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A uniqueness rule or a precondition on stored state was violated.
    #[error("{0}")]
    Conflict(String),
    /// A rule the store keeps refused the change, with a stable code for the API (e.g.
    /// `last_admin_token`).
    #[error("{message}")]
    Refused {
        /// Stable machine-readable reason.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be interpreted (a bug or a tampered database).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;
