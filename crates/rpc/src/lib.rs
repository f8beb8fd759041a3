//! The internal gRPC contracts, generated from `proto/`: the api serves them, the bot calls them.
//!
//! Service-to-service calls carry `authorization: Bearer <service token>`; [`ServiceAuth`] checks it in
//! constant time on the server, [`BearerToken`] adds it on the client.

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
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}
