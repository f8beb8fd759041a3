//! The internal gRPC contracts, generated from `proto/`: the api serves them, the bot calls them.
//!
//! Service-to-service calls carry `authorization: Bearer <service token>`; [`ServiceAuth`] checks it in
//! constant time on the server, [`BearerToken`] adds it on the client, with the caller's W3C trace context,
//! which [`server_span`] continues on the server.

use tonic::{Request, Status, metadata::MetadataValue, service::Interceptor};

/// `cybervpn.bot.v1`: what the Telegram bot may do.
pub mod bot {
    /// Version 1.
    #[expect(
        missing_docs,
        clippy::allow_attributes,
        reason = "generated from proto/ (documented there), with prost's own allow attributes"
    )]
    pub mod v1 {
        tonic::include_proto!("cybervpn.bot.v1");
    }
}

/// The descriptor set of every proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cybervpn_descriptor");

/// Checks the bearer token of incoming calls against the configured service tokens, in constant time.
#[derive(Clone)]
pub struct ServiceAuth {
    tokens: std::sync::Arc<Vec<(String, Vec<u8>)>>,
}

impl std::fmt::Debug for ServiceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services: Vec<&str> = self.tokens.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ServiceAuth")
            .field("services", &services)
            .finish()
    }
}

/// The calling service, as [`ServiceAuth`] identified it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingService(pub String);

impl ServiceAuth {
    /// Accepts calls carrying one of `tokens` (service name, token).
    pub fn new(tokens: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            tokens: std::sync::Arc::new(
                tokens
                    .into_iter()
                    .map(|(name, token)| (name, token.into_bytes()))
                    .collect(),
            ),
        }
    }

    /// The service whose token `presented` is, if any (every token is compared, whatever matches).
    fn identify(&self, presented: &[u8]) -> Option<&str> {
        use subtle::ConstantTimeEq as _;
        let mut found = None;
        for (name, token) in self.tokens.iter() {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

impl Interceptor for ServiceAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        let Some(service) = self.identify(&presented).map(str::to_owned) else {
            return Err(Status::unauthenticated("missing or invalid service token"));
        };
        request.extensions_mut().insert(CallingService(service));
        Ok(request)
    }
}

/// Adds `authorization: Bearer <token>` to every outgoing call.
#[derive(Clone)]
pub struct BearerToken(MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// A token for outgoing calls; fails if it is not a valid header value.
    pub fn new(token: &str) -> Result<Self, Status> {
        let mut value: MetadataValue<tonic::metadata::Ascii> =
            format!("Bearer {token}").parse().map_err(|_| {
                Status::invalid_argument("the service token is not a valid header value")
            })?;
        value.set_sensitive(true);
        Ok(Self(value))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        metadata.insert("authorization", self.0.clone());
        for (name, value) in cybervpn_telemetry::trace_headers() {
            if let Ok(value) = value.parse() {
                metadata.insert(name, value);
            }
        }
        Ok(request)
    }
}

/// The span of one incoming call, continuing the caller's trace (for `Server::trace_fn`); the method path
/// (`/cybervpn.bot.v1.BotService/Plans`) is its only field.
pub fn server_span(request: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!("grpc_request", method = %request.uri().path());
    cybervpn_telemetry::continue_trace(&span, |name| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    });
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bot's call carries its trace; the api's span for it continues that trace.
    #[test]
    fn a_call_carries_the_callers_trace_to_the_server_span() {
        tracing::subscriber::with_default(cybervpn_telemetry::test_subscriber(), || {
            let update = tracing::info_span!("update");
            let _entered = update.enter();
            let caller = cybervpn_telemetry::current_trace_id().unwrap();
            let mut bearer = BearerToken::new("t0ken").unwrap();
            let request = bearer.call(Request::new(())).unwrap();
            let traceparent = request
                .metadata()
                .get("traceparent")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            assert!(traceparent.contains(&caller), "{traceparent}");
            assert!(!traceparent.contains("t0ken"));

            let incoming = tonic::codegen::http::Request::builder()
                .uri("/cybervpn.bot.v1.BotService/Plans")
                .header("traceparent", &traceparent)
                .body(())
                .unwrap();
            let server = tracing::info_span!(parent: None, "server_side");
            let _server = server.enter();
            let handler = server_span(&incoming);
            let _handler = handler.enter();
            assert_eq!(cybervpn_telemetry::current_trace_id(), Some(caller));
        });
    }

    #[test]
    fn an_untraced_call_carries_only_the_token() {
        let mut bearer = BearerToken::new("t0ken").unwrap();
        let request = bearer.call(Request::new(())).unwrap();
        assert!(request.metadata().get("traceparent").is_none());
        assert!(request.metadata().get("authorization").is_some());
    }
}
