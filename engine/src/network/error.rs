//! Errors of network operations, mapped to HTTP statuses in `api::error`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetworkError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network {0} is ambiguous (more than one network has this id prefix)")]
    Ambiguous(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not implemented in berth yet")]
    NotImplemented(String),
}
