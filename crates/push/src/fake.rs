//! A fake of FCM's HTTP v1 `messages:send` and Google's OAuth token endpoint on loopback.
//!
//! It makes its own RSA service-account key at start (test-only, never leaves the process), checks the JWT
//! assertion as Google does (RS256 signature against the key's public part, `iss`, `scope`, `aud`, `iat`,
//! `exp`, the grant type), accepts only the access tokens it issued on sends, records every delivered
//! message, and answers `UNREGISTERED` for tokens marked gone and queued faults on demand.

use std::{
    collections::{HashSet, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    encoding::AsDer as _,
    rsa::KeySize,
    signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey},
};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, Response, StatusCode, body::Incoming, header::CONTENT_TYPE, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch};

use crate::{GRANT_TYPE, SCOPE};

/// Request bodies above this are refused.
const MAX_BODY: usize = 64 * 1024;
/// The service account's email.
const CLIENT_EMAIL: &str = "push@fake-project.iam.gserviceaccount.com";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The device's registration token.
    pub token: String,
    /// `notification.title`.
    pub title: String,
    /// `notification.body`.
    pub body: String,
    /// `data.kind`.
    pub kind: String,
}

#[derive(Debug, Default)]
struct State {
    /// Access tokens issued and still accepted.
    live_tokens: HashSet<String>,
    /// Token exchanges accepted.
    exchanges: usize,
    /// Token exchanges refused, with the reason.
    refused: Vec<String>,
    /// Send requests received (any outcome).
    sends: usize,
    /// Registration tokens FCM no longer knows.
    unregistered: HashSet<String>,
    /// Statuses to answer the next sends with, without delivering.
    faults: VecDeque<u16>,
    delivered: Vec<Delivered>,
}

struct Shared {
    project_id: String,
    token_uri: String,
    public_key: Vec<u8>,
    state: Mutex<State>,
}

struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    service_account_json: String,
    stop: watch::Sender<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A running fake; stops when the last clone is dropped.
#[derive(Clone)]
pub struct FcmFake {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for FcmFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmFake")
            .field("addr", &self.handle.addr)
            .finish_non_exhaustive()
    }
}

impl FcmFake {
    /// Serves the fake for `project_id` on `127.0.0.1:0` on the current Tokio runtime.
    pub async fn start(project_id: &str) -> std::io::Result<Self> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| std::io::Error::other("generate the test RSA key"))?;
        let pkcs8 = key
            .as_der()
            .map_err(|_| std::io::Error::other("encode the test RSA key"))?;
        let pem_body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<&str> = pem_body
            .as_bytes()
            .chunks(64)
            .filter_map(|chunk| std::str::from_utf8(chunk).ok())
            .collect();
        let private_key = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let token_uri = format!("http://{addr}/token");
        let service_account_json = json!({
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": "fake",
            "private_key": private_key,
            "client_email": CLIENT_EMAIL,
            "token_uri": token_uri,
        })
        .to_string();
        let shared = Arc::new(Shared {
            project_id: project_id.to_owned(),
            token_uri,
            public_key: key.public_key().as_ref().to_vec(),
            state: Mutex::new(State::default()),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(listener, Arc::clone(&shared), stopped));
        Ok(Self {
            handle: Arc::new(Handle {
                shared,
                addr,
                service_account_json,
                stop,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.handle.shared.state)
    }

    /// The FCM API base URL: `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// The service account JSON key file (its `token_uri` points at this fake).
    pub fn service_account_json(&self) -> &str {
        &self.handle.service_account_json
    }

    /// Messages delivered, in order.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.state().delivered.clone()
    }

    /// Token exchanges the fake accepted.
    pub fn exchanges(&self) -> usize {
        self.state().exchanges
    }

    /// Why token exchanges were refused, if any were.
    pub fn refused(&self) -> Vec<String> {
        self.state().refused.clone()
    }

    /// Send requests received, whatever their outcome.
    pub fn sends(&self) -> usize {
        self.state().sends
    }

    /// Makes FCM answer 404 `UNREGISTERED` for `token` from now on.
    pub fn unregister(&self, token: &str) {
        self.state().unregistered.insert(token.to_owned());
    }

    /// Answers the next `times` sends with `status` (and an error body), delivering nothing.
    pub fn fail_sends(&self, status: u16, times: usize) {
        self.state()
            .faults
            .extend(std::iter::repeat_n(status, times));
    }

    /// Revokes every access token issued so far (the next send gets 401).
    pub fn revoke_access_tokens(&self) {
        self.state().live_tokens.clear();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, hyper::Error>(handle(&shared, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Google's error envelope, with an FCM error code when there is one.
fn fcm_error(
    status: StatusCode,
    api_status: &str,
    fcm_code: Option<&str>,
) -> Response<Full<Bytes>> {
    let details = fcm_code.map_or_else(Vec::new, |code| {
        vec![json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code})]
    });
    answer(
        status,
        &json!({"error": {"code": status.as_u16(), "message": api_status, "status": api_status, "details": details}}),
    )
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let bearer = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let post = request.method() == hyper::Method::POST;
    let Ok(body) = Limited::new(request.into_body(), MAX_BODY).collect().await else {
        return answer(StatusCode::PAYLOAD_TOO_LARGE, &json!({}));
    };
    let body = body.to_bytes();
    let send_path = format!("/v1/projects/{}/messages:send", shared.project_id);
    match (post, path.as_str()) {
        (true, "/token") => token(shared, &body),
        (true, p) if p == send_path => send(shared, bearer.as_deref(), &body),
        _ => fcm_error(StatusCode::NOT_FOUND, "NOT_FOUND", None),
    }
}

fn token(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let checked = match (field("grant_type"), field("assertion")) {
        (Some(GRANT_TYPE), Some(assertion)) => check_assertion(shared, assertion),
        _ => Err("wrong grant_type or no assertion".to_owned()),
    };
    let mut state = lock(&shared.state);
    if let Err(reason) = checked {
        state.refused.push(reason.clone());
        return answer(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_grant", "error_description": reason}),
        );
    }
    state.exchanges += 1;
    let access_token = format!("ya29.fake-{}", state.exchanges);
    state.live_tokens.insert(access_token.clone());
    answer(
        StatusCode::OK,
        &json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn check_assertion(shared: &Shared, assertion: &str) -> Result<(), String> {
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| "a JWT part is not base64url".to_owned())
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("not a JWT".to_owned());
    };
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &shared.public_key)
        .verify(format!("{header}.{claims}").as_bytes(), &decode(signature)?)
        .map_err(|_| "bad RS256 signature".to_owned())?;
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| "header is not JSON".to_owned())?;
    if header["alg"] != "RS256" {
        return Err("alg is not RS256".to_owned());
    }
    let claims: Value =
        serde_json::from_slice(&decode(claims)?).map_err(|_| "claims are not JSON".to_owned())?;
    if claims["iss"] != CLIENT_EMAIL {
        return Err("wrong iss".to_owned());
    }
    if claims["scope"] != SCOPE {
        return Err("wrong scope".to_owned());
    }
    if claims["aud"] != shared.token_uri.as_str() {
        return Err("wrong aud".to_owned());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("iat or exp missing".to_owned());
    };
    if iat.abs_diff(now) > 300 {
        return Err("iat is not now".to_owned());
    }
    if exp != iat + 3600 {
        return Err("exp is not iat + 3600".to_owned());
    }
    Ok(())
}

fn send(shared: &Shared, bearer: Option<&str>, body: &[u8]) -> Response<Full<Bytes>> {
    let mut state = lock(&shared.state);
    state.sends += 1;
    if !bearer.is_some_and(|token| state.live_tokens.contains(token)) {
        return fcm_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None);
    }
    if let Some(status) = state.faults.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return fcm_error(status, "UNAVAILABLE", Some("UNAVAILABLE"));
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", None);
    };
    let message = &request["message"];
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let (Some(token), Some(title), Some(text_body), Some(kind)) = (
        text(&message["token"]),
        text(&message["notification"]["title"]),
        text(&message["notification"]["body"]),
        text(&message["data"]["kind"]),
    ) else {
        return fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", None);
    };
    if token.is_empty() {
        return fcm_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            Some("INVALID_ARGUMENT"),
        );
    }
    if state.unregistered.contains(&token) {
        return fcm_error(StatusCode::NOT_FOUND, "NOT_FOUND", Some("UNREGISTERED"));
    }
    let name = format!(
        "projects/{}/messages/{}",
        shared.project_id,
        state.delivered.len() + 1
    );
    state.delivered.push(Delivered {
        token,
        title,
        body: text_body,
        kind,
    });
    answer(StatusCode::OK, &json!({"name": name}))
}
