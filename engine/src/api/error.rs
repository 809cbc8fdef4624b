//! The one place where engine errors become HTTP statuses and Docker's `{"message": ...}`.

use super::body::{empty, full, Response};
use crate::containers::ContainerError;
use crate::images::ImageError;
use hyper::StatusCode;

/// An error the API answers with.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_implemented(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, format!("{what} is not implemented in berth yet"))
    }

    pub fn into_response(self) -> Response {
        if self.status == StatusCode::NOT_MODIFIED {
            return hyper::Response::builder().status(self.status).body(empty()).unwrap();
        }
        let body = serde_json::json!({ "message": self.message }).to_string();
        hyper::Response::builder().status(self.status).header("Content-Type", "application/json").body(full(body + "\n")).unwrap()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        use StatusCode as S;
        if let Some(ce) = e.downcast_ref::<ContainerError>() {
            let status = match ce {
                ContainerError::NotFound(_) | ContainerError::NotFoundPath(_) => S::NOT_FOUND,
                ContainerError::Ambiguous(_) | ContainerError::Invalid(_) | ContainerError::StartFailed(_) => S::BAD_REQUEST,
                ContainerError::NameInUse { .. } | ContainerError::Conflict(_) => S::CONFLICT,
                ContainerError::NotModified(_) => S::NOT_MODIFIED,
                ContainerError::NotImplemented(_) => S::NOT_IMPLEMENTED,
            };
            return ApiError::new(status, ce.to_string());
        }
        if let Some(ie) = e.downcast_ref::<ImageError>() {
            let status = match ie {
                ImageError::NotFound(_) => S::NOT_FOUND,
                ImageError::Conflict(_) => S::CONFLICT,
                ImageError::Invalid(_) => S::BAD_REQUEST,
            };
            return ApiError::new(status, ie.to_string());
        }
        if let Some(ne) = e.downcast_ref::<crate::network::NetworkError>() {
            use crate::network::NetworkError as N;
            let status = match ne {
                N::NotFound(_) => S::NOT_FOUND,
                N::Ambiguous(_) | N::Invalid(_) => S::BAD_REQUEST,
                N::Conflict(_) => S::CONFLICT,
                N::NotImplemented(_) => S::NOT_IMPLEMENTED,
            };
            return ApiError::new(status, ne.to_string());
        }
        if let Some(ve) = e.downcast_ref::<crate::volumes::VolumeError>() {
            use crate::volumes::VolumeError as V;
            let status = match ve {
                V::NotFound(_) => S::NOT_FOUND,
                V::Invalid(_) => S::BAD_REQUEST,
                V::Conflict(_) => S::CONFLICT,
            };
            return ApiError::new(status, ve.to_string());
        }
        ApiError::new(S::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl From<ContainerError> for ApiError {
    fn from(e: ContainerError) -> Self {
        anyhow::Error::from(e).into()
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        anyhow::Error::from(e).into()
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;
