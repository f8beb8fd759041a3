//! RFC 7807 problem responses: every error leaves the api through [`ApiError`].

use actix_web::{
    HttpResponse, ResponseError,
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{StatusCode, header},
};
use cybervpn_db::DbError;
use cybervpn_domain::{DomainError, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 7807 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type: `urn:cybervpn:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: &'static str,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Stable machine-readable code from the error catalogue.
    pub code: &'static str,
    /// The offending field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// Every error the api returns.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    field: Option<&'static str>,
    allow: Option<String>,
    retry_after: Option<u64>,
    /// Cause kept for the logs of 5xx errors; never sent to the client.
    source: Option<anyhow::Error>,
}

/// HTTP status for each catalogue code; exhaustive so a new code must choose one.
pub const fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::MalformedJson => StatusCode::BAD_REQUEST,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::RouteNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Conflict | ErrorCode::InvalidStateTransition => StatusCode::CONFLICT,
        ErrorCode::Unauthorized
        | ErrorCode::InvalidCredentials
        | ErrorCode::TokenExpired
        | ErrorCode::TokenInvalid
        | ErrorCode::RefreshTokenReused
        | ErrorCode::InvalidTwoFactorCode => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::AccountDisabled | ErrorCode::TwoFactorSetupRequired => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::RateLimited | ErrorCode::AccountLocked => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error with a catalogue code and a client-facing detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            field: None,
            allow: None,
            retry_after: None,
            source: None,
        }
    }

    /// 429 (or `account_locked`) telling the client when to retry.
    pub fn retry_later(
        code: ErrorCode,
        detail: impl Into<String>,
        after: std::time::Duration,
    ) -> Self {
        Self {
            // Round up: retrying a little late is fine, early is not.
            retry_after: Some(after.as_secs() + u64::from(after.subsec_nanos() > 0)),
            ..Self::new(code, detail)
        }
    }

    /// A validation failure of one request field.
    pub fn invalid_field(field: &'static str, detail: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(ErrorCode::ValidationFailed, detail)
        }
    }

    /// An unexpected failure: the cause is logged, the client sees a generic message.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(ErrorCode::Internal, "an unexpected error occurred")
        }
    }

    /// A dependency (database, Redis) is down: the cause is logged, the client is told to retry.
    pub fn unavailable(detail: impl Into<String>, source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(ErrorCode::ServiceUnavailable, detail)
        }
    }

    /// 405 for a known path, listing the methods it accepts.
    pub fn method_not_allowed(allow: String) -> Self {
        Self {
            allow: Some(allow.clone()),
            ..Self::new(
                ErrorCode::MethodNotAllowed,
                format!("this resource accepts: {allow}"),
            )
        }
    }

    /// What went wrong, as the client is told.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The catalogue code.
    pub const fn code(&self) -> ErrorCode {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_for(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            match &self.source {
                Some(source) => {
                    tracing::error!(code = %self.code, error = ?source, "request failed")
                }
                None => tracing::error!(code = %self.code, "request failed"),
            }
        }
        let problem = Problem {
            type_uri: format!("urn:cybervpn:problem:{}", self.code),
            title: self.code.title(),
            status: status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str(),
            field: self.field,
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.body(serde_json::to_vec(&problem).unwrap_or_default())
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        let field = match &err {
            DomainError::Invalid { field, .. } => Some(*field),
            DomainError::NotFound { .. }
            | DomainError::Conflict { .. }
            | DomainError::InvalidTransition { .. }
            | DomainError::Forbidden => None,
        };
        Self {
            field,
            ..Self::new(err.code(), err.to_string())
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Domain(err) => err.into(),
            DbError::Unavailable(_) => Self::unavailable("the database is unavailable", err),
            DbError::Database(_) | DbError::Corrupt { .. } => Self::internal(err),
        }
    }
}

impl From<JsonPayloadError> for ApiError {
    fn from(err: JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::OverflowKnownLength { length, limit } => Self::new(
                ErrorCode::PayloadTooLarge,
                format!("body of {length} bytes exceeds the limit of {limit} bytes"),
            ),
            JsonPayloadError::Overflow { limit } => Self::new(
                ErrorCode::PayloadTooLarge,
                format!("body exceeds the limit of {limit} bytes"),
            ),
            JsonPayloadError::ContentType => Self::new(
                ErrorCode::UnsupportedMediaType,
                "expected Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(err) if err.is_data() => {
                Self::new(ErrorCode::ValidationFailed, err.to_string())
            }
            JsonPayloadError::Deserialize(err) => {
                Self::new(ErrorCode::MalformedJson, format!("malformed JSON: {err}"))
            }
            JsonPayloadError::Serialize(err) => Self::internal(err),
            JsonPayloadError::Payload(err) => {
                Self::new(ErrorCode::MalformedJson, format!("unreadable body: {err}"))
            }
            other => Self::new(ErrorCode::MalformedJson, other.to_string()),
        }
    }
}

impl From<cybervpn_kv::KvError> for ApiError {
    fn from(err: cybervpn_kv::KvError) -> Self {
        Self::unavailable("shared state is unavailable", err)
    }
}

impl From<cybervpn_auth::HashError> for ApiError {
    fn from(err: cybervpn_auth::HashError) -> Self {
        Self::internal(err)
    }
}

impl From<PathError> for ApiError {
    fn from(err: PathError) -> Self {
        Self::new(ErrorCode::ValidationFailed, format!("invalid path: {err}"))
    }
}

impl From<QueryPayloadError> for ApiError {
    fn from(err: QueryPayloadError) -> Self {
        Self::new(ErrorCode::ValidationFailed, format!("invalid query: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_an_error_status() {
        for code in ErrorCode::ALL {
            let status = status_for(*code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
        }
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let err = ApiError::internal(anyhow::anyhow!("password=hunter2 at db:5432"));
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .expect("ready")
            .expect("body");
        let text = String::from_utf8(body.to_vec()).expect("utf8");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("\"code\":\"internal\""), "{text}");
    }
}
