//! What can go wrong talking to the panel; every variant names the operation, none carries a secret.

/// Panel codes meaning "no such user" (`A025`) and "lookup found nothing" (`A063`).
const NOT_FOUND_CODES: [&str; 2] = ["A025", "A063"];

/// Why a panel call failed.
#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    /// The panel answered with an error status (and, usually, one of its error codes).
    #[error("remnawave {operation}: panel answered HTTP {status}{}: {message}", code_suffix(.code.as_deref()))]
    Api {
        /// The operation, such as `users.create`.
        operation: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// The panel's `errorCode` (`A019`, `A025`, …); absent on validation errors.
        code: Option<String>,
        /// The panel's `message`, or the start of a non-JSON body.
        message: String,
    },
    /// No complete answer within the configured timeout.
    #[error("remnawave {operation}: timed out")]
    Timeout {
        /// The operation, such as `users.get`.
        operation: &'static str,
    },
    /// The connection failed or was closed before a complete answer (as the panel does without the
    /// forwarding headers).
    #[error("remnawave {operation}: connection failed: {reason}")]
    Connection {
        /// The operation, such as `users.get`.
        operation: &'static str,
        /// The transport error chain.
        reason: String,
    },
    /// A success answer whose body is not what the contract describes.
    #[error("remnawave {operation}: undecodable answer: {reason}")]
    Decode {
        /// The operation, such as `users.get`.
        operation: &'static str,
        /// What did not parse.
        reason: String,
    },
    /// The request was refused before being sent (bad argument, unknown squad name).
    #[error("remnawave {operation}: {reason}")]
    Invalid {
        /// The operation, such as `users.extend`.
        operation: &'static str,
        /// What is wrong with the arguments.
        reason: String,
    },
    /// The panel runs a version this client does not speak (older than 3.0).
    #[error("remnawave panel version `{version}` is not supported: 3.0 or newer is required")]
    UnsupportedVersion {
        /// The version the panel reported.
        version: String,
    },
    /// The client configuration is unusable.
    #[error("remnawave client configuration: {0}")]
    Config(String),
}

fn code_suffix(code: Option<&str>) -> String {
    code.map(|code| format!(" {code}")).unwrap_or_default()
}

impl PanelError {
    /// Whether trying again later may succeed: timeouts, connection failures, 5xx and 429.
    pub const fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Api { status, .. } => *status >= 500 || *status == 429,
            Self::Decode { .. }
            | Self::Invalid { .. }
            | Self::UnsupportedVersion { .. }
            | Self::Config(_) => false,
        }
    }

    /// The operation that failed, when the error comes from one.
    pub const fn operation(&self) -> Option<&'static str> {
        match self {
            Self::Api { operation, .. }
            | Self::Timeout { operation }
            | Self::Connection { operation, .. }
            | Self::Decode { operation, .. }
            | Self::Invalid { operation, .. } => Some(operation),
            Self::UnsupportedVersion { .. } | Self::Config(_) => None,
        }
    }

    /// The panel's error code (`A019`, …), when the panel sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of an error answer.
    pub const fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the panel said the user (or lookup) does not exist: 404 with `A025` or `A063`.
    ///
    /// A 400 never means "not found" (a non-numeric id is a 400), whatever its message.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            && self
                .code()
                .is_some_and(|code| NOT_FOUND_CODES.contains(&code))
    }
}

impl cybervpn_telemetry::AttemptError for PanelError {
    fn is_retryable(&self) -> bool {
        Self::is_retryable(self)
    }

    fn metric_status(&self) -> String {
        match self {
            Self::Api { status, .. } => status.to_string(),
            Self::Timeout { .. } => "timeout".to_owned(),
            Self::Connection { .. } => "connection".to_owned(),
            Self::Decode { .. } => "decode".to_owned(),
            Self::Invalid { .. } | Self::UnsupportedVersion { .. } | Self::Config(_) => {
                "invalid".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: Option<&str>) -> PanelError {
        PanelError::Api {
            operation: "users.get",
            status,
            code: code.map(str::to_owned),
            message: "m".to_owned(),
        }
    }

    #[test]
    fn only_404_with_a_lookup_code_is_not_found() {
        assert!(api(404, Some("A025")).is_not_found());
        assert!(api(404, Some("A063")).is_not_found());
        assert!(!api(400, Some("A025")).is_not_found());
        assert!(!api(400, None).is_not_found());
        assert!(!api(404, None).is_not_found());
    }

    #[test]
    fn retryable_are_transient_failures_only() {
        assert!(api(500, Some("A018")).is_retryable());
        assert!(api(503, None).is_retryable());
        assert!(api(429, None).is_retryable());
        assert!(!api(400, Some("A019")).is_retryable());
        assert!(!api(401, None).is_retryable());
        assert!(
            PanelError::Timeout {
                operation: "users.get"
            }
            .is_retryable()
        );
        assert!(
            !PanelError::Decode {
                operation: "users.get",
                reason: String::new()
            }
            .is_retryable()
        );
    }

    #[test]
    fn display_names_operation_status_and_code() {
        let text = api(400, Some("A019")).to_string();
        assert_eq!(text, "remnawave users.get: panel answered HTTP 400 A019: m");
        assert_eq!(
            api(400, None).to_string(),
            "remnawave users.get: panel answered HTTP 400: m"
        );
    }
}
