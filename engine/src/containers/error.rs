//! Errors of container operations, each mapped to an HTTP status in one place (`api::error`).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("multiple containers found with provided prefix: {0}")]
    Ambiguous(String),
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse { name: String, id: String },
    #[error("{0}")]
    Conflict(String),
    /// A path inside a container that is not there (`docker cp`): HTTP 404.
    #[error("{0}")]
    NotFoundPath(String),
    #[error("{0}")]
    Invalid(String),
    /// Start of a started container, stop of a stopped one: HTTP 304.
    #[error("container already {0}")]
    NotModified(&'static str),
    #[error("{0} is not implemented in berth yet")]
    NotImplemented(String),
    /// The runtime refused the container (bad command, missing binary): HTTP 400.
    #[error("{0}")]
    StartFailed(String),
}
