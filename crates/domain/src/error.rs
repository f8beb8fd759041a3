//! Business errors and the catalogue of stable error codes every edge maps them to.

use std::fmt;

/// Stable machine-readable error codes shared by every edge (HTTP problem `code`, gRPC details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A field of the request broke a validation rule.
    ValidationFailed,
    /// The request body is not well-formed JSON.
    MalformedJson,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The request body's content type is not accepted.
    UnsupportedMediaType,
    /// No route matches the request path.
    RouteNotFound,
    /// The route exists, but not for this method.
    MethodNotAllowed,
    /// The addressed resource does not exist.
    NotFound,
    /// The resource clashes with one that already exists.
    Conflict,
    /// The resource's current state does not allow the requested change.
    InvalidStateTransition,
    /// The caller is not authenticated.
    Unauthorized,
    /// The caller is authenticated but not allowed to do this.
    Forbidden,
    /// The email or password is wrong (never says which).
    InvalidCredentials,
    /// The access or pending token has expired.
    TokenExpired,
    /// The token is malformed, forged, or meant for another audience.
    TokenInvalid,
    /// A refresh token was presented twice; its whole family is now revoked.
    RefreshTokenReused,
    /// The one-time code is wrong, expired, or was already used.
    InvalidTwoFactorCode,
    /// Staff must enable two-factor authentication first.
    TwoFactorSetupRequired,
    /// Too many failed sign-ins; try again after the delay.
    AccountLocked,
    /// The account is disabled or banned.
    AccountDisabled,
    /// The caller sent too many requests.
    RateLimited,
    /// Something we depend on is down; retrying later may succeed.
    ServiceUnavailable,
    /// An unexpected failure on our side.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: &'static [Self] = &[
        Self::ValidationFailed,
        Self::MalformedJson,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RouteNotFound,
        Self::MethodNotAllowed,
        Self::NotFound,
        Self::Conflict,
        Self::InvalidStateTransition,
        Self::Unauthorized,
        Self::Forbidden,
        Self::InvalidCredentials,
        Self::TokenExpired,
        Self::TokenInvalid,
        Self::RefreshTokenReused,
        Self::InvalidTwoFactorCode,
        Self::TwoFactorSetupRequired,
        Self::AccountLocked,
        Self::AccountDisabled,
        Self::RateLimited,
        Self::ServiceUnavailable,
        Self::Internal,
    ];

    /// The stable snake_case code clients match on; never change one once released.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::MalformedJson => "malformed_json",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::InvalidStateTransition => "invalid_state_transition",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TokenExpired => "token_expired",
            Self::TokenInvalid => "token_invalid",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::InvalidTwoFactorCode => "invalid_two_factor_code",
            Self::TwoFactorSetupRequired => "two_factor_setup_required",
            Self::AccountLocked => "account_locked",
            Self::AccountDisabled => "account_disabled",
            Self::RateLimited => "rate_limited",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal",
        }
    }

    /// A short human title for the code (the problem document's `title`).
    pub const fn title(self) -> &'static str {
        match self {
            Self::ValidationFailed => "Validation failed",
            Self::MalformedJson => "Malformed JSON body",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::RouteNotFound => "Route not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::NotFound => "Resource not found",
            Self::Conflict => "Resource already exists",
            Self::InvalidStateTransition => "Invalid state transition",
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::InvalidCredentials => "Invalid credentials",
            Self::TokenExpired => "Token expired",
            Self::TokenInvalid => "Invalid token",
            Self::RefreshTokenReused => "Refresh token reused",
            Self::InvalidTwoFactorCode => "Invalid two-factor code",
            Self::TwoFactorSetupRequired => "Two-factor setup required",
            Self::AccountLocked => "Account temporarily locked",
            Self::AccountDisabled => "Account disabled",
            Self::RateLimited => "Too many requests",
            Self::ServiceUnavailable => "Service unavailable",
            Self::Internal => "Internal server error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A business rule was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A value failed validation.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (or value kind) that was rejected, e.g. `"email"`.
        field: &'static str,
        /// Why it was rejected, in words a user can act on.
        reason: String,
    },
    /// The addressed entity does not exist.
    #[error("{entity} not found")]
    NotFound {
        /// The kind of entity, e.g. `"customer"`.
        entity: &'static str,
    },
    /// Something unique already exists.
    #[error("{what} already exists")]
    Conflict {
        /// What clashed, e.g. `"email"`.
        what: &'static str,
    },
    /// The entity's state machine forbids this change.
    #[error("{entity} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The kind of entity, e.g. `"payment"`.
        entity: &'static str,
        /// The state it is in.
        from: &'static str,
        /// The state that was asked for.
        to: &'static str,
    },
    /// The actor may not do this.
    #[error("forbidden")]
    Forbidden,
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The catalogue code this error is reported under.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::ValidationFailed,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::InvalidTransition { .. } => ErrorCode::InvalidStateTransition,
            Self::Forbidden => ErrorCode::Forbidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Exhaustive, so a new variant does not compile until it is placed in `ALL` too.
    const fn position(code: ErrorCode) -> usize {
        match code {
            ErrorCode::ValidationFailed => 0,
            ErrorCode::MalformedJson => 1,
            ErrorCode::PayloadTooLarge => 2,
            ErrorCode::UnsupportedMediaType => 3,
            ErrorCode::RouteNotFound => 4,
            ErrorCode::MethodNotAllowed => 5,
            ErrorCode::NotFound => 6,
            ErrorCode::Conflict => 7,
            ErrorCode::InvalidStateTransition => 8,
            ErrorCode::Unauthorized => 9,
            ErrorCode::Forbidden => 10,
            ErrorCode::InvalidCredentials => 11,
            ErrorCode::TokenExpired => 12,
            ErrorCode::TokenInvalid => 13,
            ErrorCode::RefreshTokenReused => 14,
            ErrorCode::InvalidTwoFactorCode => 15,
            ErrorCode::TwoFactorSetupRequired => 16,
            ErrorCode::AccountLocked => 17,
            ErrorCode::AccountDisabled => 18,
            ErrorCode::RateLimited => 19,
            ErrorCode::ServiceUnavailable => 20,
            ErrorCode::Internal => 21,
        }
    }

    #[test]
    fn all_lists_every_code_once_in_order() {
        assert_eq!(ErrorCode::ALL.len(), 22);
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), index, "{code:?} is out of place in ALL");
        }
    }

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "duplicate code {text}");
            assert!(!text.is_empty());
            assert!(
                text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{text} is not snake_case"
            );
            assert!(!text.starts_with('_') && !text.ends_with('_') && !text.contains("__"));
            assert_eq!(code.to_string(), text);
        }
    }

    #[test]
    fn titles_are_unique_and_non_empty() {
        let titles: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.title()).collect();
        assert_eq!(titles.len(), ErrorCode::ALL.len());
        assert!(titles.iter().all(|t| !t.is_empty()));
        assert_eq!(ErrorCode::NotFound.title(), "Resource not found");
    }

    #[test]
    fn domain_errors_map_to_their_codes_and_messages() {
        let cases = [
            (
                DomainError::invalid("email", "must contain an @"),
                ErrorCode::ValidationFailed,
                "invalid email: must contain an @",
            ),
            (
                DomainError::NotFound { entity: "customer" },
                ErrorCode::NotFound,
                "customer not found",
            ),
            (
                DomainError::Conflict { what: "email" },
                ErrorCode::Conflict,
                "email already exists",
            ),
            (
                DomainError::InvalidTransition {
                    entity: "payment",
                    from: "failed",
                    to: "completed",
                },
                ErrorCode::InvalidStateTransition,
                "payment cannot go from failed to completed",
            ),
            (DomainError::Forbidden, ErrorCode::Forbidden, "forbidden"),
        ];
        for (error, code, message) in cases {
            assert_eq!(error.code(), code);
            assert_eq!(error.to_string(), message);
        }
    }
}
