#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
//! Drives every route of the fake with raw HTTP calls and checks each exchange, and each webhook, against the
//! JSON Schemas of the official `@remnawave/backend-contract` (installed by `Contract::load` with npm).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_panel_fake::contract::Contract;
use cybervpn_panel_fake::{Exchange, FakeOptions, Fault, PanelFake, WebhookTarget};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

const SECRET: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCD";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Raw HTTP against the fake, remembering which exchanges are meant to break the contract.
struct Api {
    fake: PanelFake,
    client: reqwest::Client,
    expected_violations: Mutex<BTreeSet<usize>>,
}

struct Answer {
    status: u16,
    body: Option<Value>,
    text: String,
}

impl Answer {
    fn response(&self) -> &Value {
        &self.body.as_ref().expect("a JSON body")["response"]
    }

    fn error_code(&self) -> Option<&str> {
        self.body.as_ref().and_then(|b| b["errorCode"].as_str())
    }
}

impl Api {
    fn new(fake: PanelFake) -> Api {
        Api {
            fake,
            client: reqwest::Client::new(),
            expected_violations: Mutex::new(BTreeSet::new()),
        }
    }

    /// A request through the "proxy" (both forwarded headers) without a token.
    fn anonymous(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.fake.url()))
            .header("x-forwarded-for", "127.0.0.1")
            .header("x-forwarded-proto", "https")
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.anonymous(method, path).bearer_auth(self.fake.token())
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Answer {
        let response = builder.send().await.expect("the fake answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).ok(),
            text,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        self.send(builder).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Marks the last exchange as one the contract must reject.
    fn last_violates(&self) {
        let index = self.fake.exchanges().len() - 1;
        self.expected_violations.lock().unwrap().insert(index);
    }

    async fn create(&self, body: Value) -> Value {
        let answer = self.post("/api/users", body).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.response().clone()
    }
}

fn future(days: i64) -> String {
    (Utc::now() + TimeDelta::days(days)).to_rfc3339()
}

fn date(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn assert_validation_error(answer: &Answer) {
    assert_eq!(answer.status, 400, "{}", answer.text);
    let body = answer.body.as_ref().unwrap();
    assert_eq!(body["message"], "Validation failed");
    assert!(
        body.get("errorCode").is_none(),
        "validation errors carry no errorCode: {body}"
    );
}

/// Checks every recorded exchange; those marked as deliberate violations must fail the check.
fn check_all(contract: &Contract, exchanges: &[Exchange], expected_violations: &BTreeSet<usize>) {
    let mut failures = Vec::new();
    for (index, exchange) in exchanges.iter().enumerate() {
        let result = contract.check(exchange);
        match (expected_violations.contains(&index), result) {
            (false, Err(error)) => failures.push(format!("#{index}: {error}")),
            (true, Ok(())) => failures.push(format!(
                "#{index}: {} {} was expected to violate the contract but passed",
                exchange.method, exchange.path
            )),
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "contract violations:\n{}",
        failures.join("\n")
    );
}

/// A webhook receiver on loopback that answers 500 to the first `fail_first` deliveries.
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let url = format!(
            "http://{}/webhooks/remnawave",
            listener.local_addr().unwrap()
        );
        let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let store = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let store = Arc::clone(&store);
                let failures = Arc::clone(&failures);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let store = Arc::clone(&store);
                        let failures = Arc::clone(&failures);
                        async move {
                            let headers = request.headers().clone();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            store.lock().unwrap().push((headers, body));
                            let fail = failures
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok();
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() =
                                if fail { 500 } else { 200 }.try_into().unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, received }
    }

    /// Waits until `count` deliveries arrived and returns them.
    async fn wait_for(&self, count: usize) -> Vec<(HeaderMap, Bytes)> {
        for _ in 0..500 {
            let received = self.received.lock().unwrap().clone();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "only {} webhooks arrived, {count} expected",
            self.received.lock().unwrap().len()
        );
    }
}

fn signature(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn every_route_matches_the_official_contract() {
    let contract = Contract::load().expect("the contract schemas (Node.js and npm are required)");
    let receiver = Receiver::start(0).await;
    let options = FakeOptions {
        webhook: Some(WebhookTarget {
            url: receiver.url.clone(),
            secret: SECRET.to_owned(),
        }),
        ..FakeOptions::default()
    };
    let fake = PanelFake::start(loopback(), options).await.unwrap();
    let api = Api::new(fake.clone());

    // System.
    let metadata = api.get("/api/system/metadata").await;
    assert!(
        metadata.response()["version"]
            .as_str()
            .unwrap()
            .starts_with("3.")
    );
    assert_eq!(api.get("/api/system/health").await.status, 200);
    assert_eq!(api.get("/api/system/stats/bandwidth").await.status, 200);
    let squads = api.get("/api/internal-squads").await;
    let names: Vec<&str> = squads.response()["internalSquads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default-Squad", "Premium"]);
    let (default_squad, premium) = (fake.squads()[0].0.clone(), fake.squads()[1].0.clone());

    // Create: every optional field, then the minimum.
    let alice = api
        .create(json!({
            "username": "alice_1", "expireAt": future(30), "status": "ACTIVE", "trafficLimitBytes": 10_737_418_240_i64,
            "trafficLimitStrategy": "MONTH", "activeInternalSquads": [premium], "telegramId": 424_242,
            "email": "alice@example.com", "hwidDeviceLimit": 3, "tag": "VIP_1", "description": "customer 1",
        }))
        .await;
    assert_eq!(
        alice["activeInternalSquads"],
        json!([{ "uuid": premium, "name": "Premium" }])
    );
    assert_eq!(alice["trafficLimitStrategy"], "MONTH");
    let short = alice["shortUuid"].as_str().unwrap().to_owned();
    assert_eq!(
        alice["subscriptionUrl"],
        format!("https://sub.example.test/{short}")
    );
    let alice_id = alice["id"].as_i64().unwrap();
    let bob = api
        .create(json!({"username": "bob-2", "expireAt": future(1)}))
        .await;
    assert_eq!(
        (bob["status"].as_str(), bob["trafficLimitBytes"].as_i64()),
        (Some("ACTIVE"), Some(0))
    );
    assert_eq!(bob["trafficLimitStrategy"], "NO_RESET");
    let bob_id = bob["id"].as_i64().unwrap();
    assert!(bob_id > alice_id);

    let duplicate = api
        .post(
            "/api/users",
            json!({"username": "alice_1", "expireAt": future(3)}),
        )
        .await;
    assert_eq!(
        (duplicate.status, duplicate.error_code()),
        (400, Some("A019"))
    );
    let invalid = api
        .post(
            "/api/users",
            json!({"username": "a!", "expireAt": future(3)}),
        )
        .await;
    assert_validation_error(&invalid);
    api.last_violates();
    let no_expiry = api.post("/api/users", json!({"username": "carol"})).await;
    assert_validation_error(&no_expiry);
    api.last_violates();

    // Reads.
    assert_eq!(
        api.get(&format!("/api/users/{alice_id}")).await.response()["username"],
        "alice_1"
    );
    let missing = api.get("/api/users/999999").await;
    assert_eq!((missing.status, missing.error_code()), (404, Some("A063")));
    let not_a_number = api.get("/api/users/alice_1").await;
    assert_validation_error(&not_a_number);
    assert_eq!(
        api.get("/api/users/by-username/alice_1").await.response()["id"],
        alice_id
    );
    let nobody = api.get("/api/users/by-username/nobody").await;
    assert_eq!((nobody.status, nobody.error_code()), (404, Some("A063")));
    assert_eq!(
        api.get(&format!("/api/users/by-short-uuid/{short}"))
            .await
            .response()["id"],
        alice_id
    );
    let no_short = api.get("/api/users/by-short-uuid/doesnotexist0000").await;
    assert_eq!(
        (no_short.status, no_short.error_code()),
        (404, Some("A063"))
    );
    for key in [
        json!({"id": alice_id}),
        json!({"username": "alice_1"}),
        json!({"shortUuid": short}),
    ] {
        let resolved = api.post("/api/users/resolve", key).await;
        assert_eq!(
            resolved.response(),
            &json!({"id": alice_id, "username": "alice_1", "shortUuid": short})
        );
    }
    let unresolved = api
        .post("/api/users/resolve", json!({"username": "nobody"}))
        .await;
    assert_eq!(unresolved.status, 404);
    let ambiguous = api.post("/api/users/resolve", json!({})).await;
    assert_validation_error(&ambiguous);

    // Update by id and by username.
    let patched = api
        .call(
            Method::PATCH,
            "/api/users",
            Some(json!({"id": bob_id, "status": "DISABLED", "trafficLimitBytes": 1000, "description": null,
                "activeInternalSquads": [default_squad, premium], "telegramId": 77})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.response()["status"], "DISABLED");
    assert_eq!(
        patched.response()["activeInternalSquads"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let replaced = api
        .call(
            Method::PATCH,
            "/api/users",
            Some(json!({"username": "bob-2", "status": "ACTIVE", "activeInternalSquads": [default_squad]})),
        )
        .await;
    assert_eq!(
        replaced.response()["activeInternalSquads"],
        json!([{ "uuid": default_squad, "name": "Default-Squad" }])
    );
    let past = api
        .call(
            Method::PATCH,
            "/api/users",
            Some(json!({"id": bob_id, "expireAt": "2001-01-01T00:00:00.000Z"})),
        )
        .await;
    assert_validation_error(&past);
    let expired_status = api
        .call(
            Method::PATCH,
            "/api/users",
            Some(json!({"id": bob_id, "status": "EXPIRED"})),
        )
        .await;
    assert_validation_error(&expired_status);
    api.last_violates();
    let patch_missing = api
        .call(
            Method::PATCH,
            "/api/users",
            Some(json!({"id": 999_999, "tag": "X"})),
        )
        .await;
    assert_eq!(
        (patch_missing.status, patch_missing.error_code()),
        (404, Some("A025"))
    );

    // Actions.
    let before = date(&alice["expireAt"]);
    let extended = api
        .post(
            &format!("/api/users/{alice_id}/actions/extend"),
            json!({"days": 30}),
        )
        .await;
    assert_eq!(
        date(&extended.response()["expireAt"]) - before,
        TimeDelta::days(30)
    );
    let lapsed = api
        .create(json!({"username": "dave_3", "expireAt": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(lapsed["status"], "EXPIRED");
    let lapsed_id = lapsed["id"].as_i64().unwrap();
    let revived = api
        .post(
            &format!("/api/users/{lapsed_id}/actions/extend"),
            json!({"days": 7}),
        )
        .await;
    assert_eq!(revived.response()["status"], "ACTIVE");
    let from_now = date(&revived.response()["expireAt"]) - Utc::now();
    assert!(
        from_now > TimeDelta::days(6) && from_now <= TimeDelta::days(7),
        "{from_now}"
    );
    let zero_days = api
        .post(
            &format!("/api/users/{alice_id}/actions/extend"),
            json!({"days": 0}),
        )
        .await;
    assert_validation_error(&zero_days);
    api.last_violates();

    let disabled = api
        .post(&format!("/api/users/{alice_id}/actions/disable"), json!({}))
        .await;
    assert_eq!(disabled.response()["status"], "DISABLED");
    let again = api
        .call(
            Method::POST,
            &format!("/api/users/{alice_id}/actions/disable"),
            None,
        )
        .await;
    assert_eq!((again.status, again.error_code()), (400, Some("A029")));
    let enabled = api
        .call(
            Method::POST,
            &format!("/api/users/{alice_id}/actions/enable"),
            None,
        )
        .await;
    assert_eq!(enabled.response()["status"], "ACTIVE");
    let again = api
        .call(
            Method::POST,
            &format!("/api/users/{alice_id}/actions/enable"),
            None,
        )
        .await;
    assert_eq!((again.status, again.error_code()), (400, Some("A030")));
    let ghost = api
        .call(Method::POST, "/api/users/999999/actions/enable", None)
        .await;
    assert_eq!((ghost.status, ghost.error_code()), (404, Some("A025")));
    let bad_id = api
        .call(Method::POST, "/api/users/abc/actions/disable", None)
        .await;
    assert_validation_error(&bad_id);

    fake.set_user_traffic(alice_id, 5_000_000);
    let used = api.get(&format!("/api/users/{alice_id}")).await;
    assert_eq!(
        used.response()["userTraffic"]["usedTrafficBytes"],
        5_000_000
    );
    let reset = api
        .call(
            Method::POST,
            &format!("/api/users/{alice_id}/actions/reset-traffic"),
            None,
        )
        .await;
    assert_eq!(reset.response()["userTraffic"]["usedTrafficBytes"], 0);
    assert_eq!(
        reset.response()["userTraffic"]["lifetimeUsedTrafficBytes"],
        5_000_000
    );

    let same = api
        .post(
            &format!("/api/users/{alice_id}/actions/revoke"),
            json!({"revokeOnlyPasswords": true}),
        )
        .await;
    assert_eq!(same.response()["shortUuid"], short.as_str());
    assert_ne!(same.response()["vlessUuid"], alice["vlessUuid"]);
    let revoked = api
        .call(
            Method::POST,
            &format!("/api/users/{alice_id}/actions/revoke"),
            None,
        )
        .await;
    let new_short = revoked.response()["shortUuid"].as_str().unwrap().to_owned();
    assert_ne!(new_short, short);
    assert_eq!(
        revoked.response()["subscriptionUrl"],
        format!("https://sub.example.test/{new_short}")
    );
    assert_eq!(
        api.get(&format!("/api/users/by-short-uuid/{short}"))
            .await
            .status,
        404
    );

    // The subscription page's info route is public.
    let info = api
        .send(api.anonymous(Method::GET, &format!("/api/sub/{new_short}/info")))
        .await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.response()["isFound"], true);
    assert!(!info.response()["links"].as_array().unwrap().is_empty());
    assert_eq!(info.response()["user"]["trafficLimitBytes"], "10737418240");

    // Stream paging over more than two pages, stable by id, and a telegramId filter.
    fake.seed_users(25);
    let total = fake.users().len();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/users/stream?size=10&cursor={c}"),
            None => "/api/users/stream?size=10".to_owned(),
        };
        let page = api.get(&path).await;
        pages += 1;
        let response = page.response();
        seen.extend(
            response["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_i64().unwrap()),
        );
        if response["hasMore"] == false {
            assert_eq!(response["nextCursor"], Value::Null);
            break;
        }
        cursor = Some(response["nextCursor"].as_str().unwrap().to_owned());
    }
    assert!(pages > 2, "{pages} pages");
    assert_eq!(seen.len(), total);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ids ascend: {seen:?}");
    let by_telegram = api.get("/api/users/stream?telegramId=424242").await;
    assert_eq!(by_telegram.response()["users"][0]["id"], alice_id);
    assert_eq!(by_telegram.response()["users"].as_array().unwrap().len(), 1);
    assert_validation_error(&api.get("/api/users/stream?size=0").await);
    assert_validation_error(&api.get("/api/users/stream?size=1001").await);
    let listed = api.get("/api/users?start=0&size=5").await;
    assert_eq!(listed.response()["total"], total);
    assert_eq!(listed.response()["users"].as_array().unwrap().len(), 5);
    let stats = api.get("/api/system/stats").await;
    assert_eq!(stats.response()["users"]["totalUsers"], total);

    // Delete answers 204 with an empty body.
    let deleted = api
        .call(Method::DELETE, &format!("/api/users/{bob_id}"), None)
        .await;
    assert_eq!((deleted.status, deleted.text.as_str()), (204, ""));
    let gone = api
        .call(Method::DELETE, &format!("/api/users/{bob_id}"), None)
        .await;
    assert_eq!((gone.status, gone.error_code()), (404, Some("A025")));
    assert!(fake.delete_user_out_of_band(lapsed_id));
    assert!(!fake.delete_user_out_of_band(lapsed_id));

    // Nodes.
    let nodes = api.get("/api/nodes").await;
    let node_list = nodes.response().as_array().unwrap();
    assert_eq!(node_list.len(), 3);
    let countries: BTreeSet<&str> = node_list
        .iter()
        .map(|n| n["countryCode"].as_str().unwrap())
        .collect();
    assert_eq!(countries.len(), 3);
    let node = node_list[0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get(&format!("/api/nodes/{node}")).await.response()["uuid"],
        node.as_str()
    );
    let restart = api
        .post(
            &format!("/api/nodes/{node}/actions/restart"),
            json!({"forceRestart": false}),
        )
        .await;
    assert_eq!((restart.status, restart.text.as_str()), (202, ""));
    let node_disabled = api
        .call(
            Method::POST,
            &format!("/api/nodes/{node}/actions/disable"),
            None,
        )
        .await;
    assert_eq!(node_disabled.response()["isDisabled"], true);
    let node_enabled = api
        .call(
            Method::POST,
            &format!("/api/nodes/{node}/actions/enable"),
            None,
        )
        .await;
    assert_eq!(node_enabled.response()["isDisabled"], false);
    assert_validation_error(&api.get("/api/nodes/not-a-uuid").await);
    let unknown = api
        .get("/api/nodes/6f1c1b1e-8a3b-4c4d-9e5f-0a1b2c3d4e5f")
        .await;
    assert_eq!((unknown.status, unknown.error_code()), (404, Some("A011")));
    fake.set_node_connected(&node, false);
    assert_eq!(fake.nodes()[0]["isConnected"], false);
    fake.set_node_connected(&node, true);

    // Authentication.
    let anonymous = api
        .send(api.anonymous(Method::GET, &format!("/api/users/{alice_id}")))
        .await;
    assert_eq!(anonymous.status, 401);
    let wrong = api
        .send(
            api.anonymous(Method::GET, "/api/nodes")
                .bearer_auth("wrong"),
        )
        .await;
    assert_eq!(wrong.status, 401);

    // Without both forwarded headers the panel hangs up without a response.
    for headers in [
        vec![],
        vec![("x-forwarded-for", "1.2.3.4")],
        vec![
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "http"),
        ],
    ] {
        let mut builder = api
            .client
            .get(format!("{}/api/system/health", fake.url()))
            .bearer_auth(fake.token());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let error = builder
            .send()
            .await
            .expect_err("the connection closes without a response");
        assert!(error.status().is_none(), "{error}");
    }
    assert_eq!(fake.exchanges().last().unwrap().status, 0);

    // Faults, consumed in order and only by matching paths.
    fake.inject(Fault::Status {
        status: 500,
        times: 1,
        path_prefix: Some("/api/users".into()),
    });
    assert_eq!(api.get("/api/nodes").await.status, 200);
    let failed = api
        .post(
            "/api/users",
            json!({"username": "erin_5", "expireAt": future(3)}),
        )
        .await;
    assert_eq!((failed.status, failed.error_code()), (500, Some("A018")));
    fake.inject(Fault::Status {
        status: 503,
        times: 2,
        path_prefix: None,
    });
    for _ in 0..2 {
        let unavailable = api.get("/api/system/health").await;
        assert_eq!(unavailable.status, 503);
        assert!(unavailable.body.is_none());
    }
    fake.inject(Fault::Garbage {
        times: 1,
        path_prefix: None,
    });
    let garbage = api.get("/api/system/health").await;
    assert_eq!(garbage.status, 200);
    assert!(garbage.body.is_none());
    api.last_violates();
    fake.inject(Fault::DropConnection {
        times: 1,
        path_prefix: Some("/api/nodes".into()),
    });
    assert!(api.request(Method::GET, "/api/nodes").send().await.is_err());
    fake.inject(Fault::Delay {
        delay: Duration::from_millis(500),
        times: 1,
        path_prefix: None,
    });
    let timed_out = api
        .request(Method::GET, "/api/system/health")
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .expect_err("the delay outlasts the client timeout");
    assert!(timed_out.is_timeout(), "{timed_out}");
    assert_eq!(api.get("/api/system/health").await.status, 200);

    // Every exchange, except the deliberate violations, conforms to the contract; every route was exercised.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let exchanges = fake.exchanges();
    check_all(
        &contract,
        &exchanges,
        &api.expected_violations.lock().unwrap(),
    );
    let exercised: BTreeSet<String> = exchanges
        .iter()
        .filter(|e| (200..300).contains(&e.status))
        .map(|e| format!("{} {}", e.method, e.route))
        .collect();
    let missing: Vec<String> = contract
        .routes()
        .into_iter()
        .filter(|r| !exercised.contains(r))
        .collect();
    assert!(missing.is_empty(), "routes never answered 2xx: {missing:?}");

    // Webhooks: signed over the exact body, timestamp repeated in a header, bodies valid against the contract.
    let expected_events = [
        "user.created",
        "user.modified",
        "user.deleted",
        "user.revoked",
        "user.disabled",
        "user.enabled",
        "user.traffic_reset",
        "node.connection_lost",
        "node.connection_restored",
        "node.disabled",
        "node.enabled",
    ];
    let deliveries = receiver.wait_for(18).await;
    let mut events = BTreeSet::new();
    for (headers, body) in &deliveries {
        let parsed: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            headers["x-remnawave-signature"].to_str().unwrap(),
            signature(body)
        );
        assert_eq!(
            headers["x-remnawave-timestamp"].to_str().unwrap(),
            parsed["timestamp"].as_str().unwrap()
        );
        assert_eq!(
            parsed["scope"].as_str(),
            parsed["event"].as_str().unwrap().split('.').next()
        );
        contract.check_webhook(&parsed).unwrap();
        events.insert(parsed["event"].as_str().unwrap().to_owned());
    }
    for event in expected_events {
        assert!(
            events.contains(event),
            "no {event} webhook among {events:?}"
        );
    }
}

#[tokio::test]
async fn webhooks_are_retried_three_times() {
    let receiver = Receiver::start(3).await;
    let options = FakeOptions {
        webhook: Some(WebhookTarget {
            url: receiver.url.clone(),
            secret: SECRET.to_owned(),
        }),
        ..FakeOptions::default()
    };
    let fake = PanelFake::start(loopback(), options).await.unwrap();
    fake.set_webhook_retry_delay(Duration::from_millis(10));
    let user = json!({"id": 1});
    assert_eq!(
        fake.send_webhook("user.created", user.clone()).await,
        Ok(200)
    );
    assert_eq!(receiver.wait_for(4).await.len(), 4);

    let always_failing = Receiver::start(usize::MAX).await;
    let options = FakeOptions {
        webhook: Some(WebhookTarget {
            url: always_failing.url.clone(),
            secret: SECRET.to_owned(),
        }),
        ..FakeOptions::default()
    };
    let fake = PanelFake::start(loopback(), options).await.unwrap();
    fake.set_webhook_retry_delay(Duration::from_millis(10));
    assert_eq!(fake.send_webhook("user.created", user).await, Ok(500));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        always_failing.received.lock().unwrap().len(),
        4,
        "1 try + 3 retries"
    );
}

#[tokio::test]
async fn a_hundred_thousand_seeded_users_stream_in_pages() {
    let fake = PanelFake::start(loopback(), FakeOptions::default())
        .await
        .unwrap();
    fake.set_recording(false);
    fake.seed_users(100_000);
    let api = Api::new(fake.clone());
    let page = api.get("/api/users/stream?size=1000&cursor=99000").await;
    assert_eq!(page.response()["users"].as_array().unwrap().len(), 1000);
    assert_eq!(page.response()["hasMore"], false);
    assert_eq!(
        api.get("/api/users/by-username/seed_100000")
            .await
            .response()["id"],
        100_000
    );
    assert!(fake.exchanges().is_empty());
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let fake = PanelFake::start(loopback(), FakeOptions::default())
        .await
        .unwrap();
    let url = fake.url();
    fake.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        reqwest::get(format!("{url}/api/system/health"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_checker_rejects_drift() {
    let contract = Contract::load().expect("the contract schemas (Node.js and npm are required)");
    let fake = PanelFake::start(loopback(), FakeOptions::default())
        .await
        .unwrap();
    let api = Api::new(fake.clone());
    api.create(json!({"username": "frank", "expireAt": future(5)}))
        .await;
    api.call(Method::DELETE, "/api/users/1", None).await;
    let exchanges = fake.exchanges();
    let (created, deleted) = (&exchanges[0], &exchanges[1]);
    contract.check(created).unwrap();
    contract.check(deleted).unwrap();

    let mut extra = created.clone();
    extra.response_body.as_mut().unwrap()["response"]["uuid"] =
        json!("6f1c1b1e-8a3b-4c4d-9e5f-0a1b2c3d4e5f");
    let error = contract.check(&extra).unwrap_err();
    assert!(
        error.contains("POST /api/users") && error.contains("response"),
        "{error}"
    );
    let mut missing = created.clone();
    missing.response_body.as_mut().unwrap()["response"]
        .as_object_mut()
        .unwrap()
        .remove("vlessUuid");
    assert!(contract.check(&missing).unwrap_err().contains("vlessUuid"));
    let mut wrong_date = created.clone();
    wrong_date.response_body.as_mut().unwrap()["response"]["expireAt"] = json!("tomorrow");
    assert!(contract.check(&wrong_date).is_err());
    let mut misspelt = created.clone();
    misspelt.request_body.as_mut().unwrap()["trafficLimitStategy"] = json!("MONTH");
    assert!(contract.check(&misspelt).unwrap_err().contains("request"));
    let mut with_body = deleted.clone();
    with_body.response_body = Some(json!({"response": {"isDeleted": true}}));
    assert!(contract.check(&with_body).is_err());
    let mut unknown = created.clone();
    unknown.route = "/api/users/{id}/actions/explode";
    assert!(contract.check(&unknown).unwrap_err().contains("no schema"));
    let webhook = json!({"scope": "node", "event": "node.connection_lost", "timestamp": "2025-01-17T15:38:45.065Z",
        "data": {}});
    assert!(contract.check_webhook(&webhook).is_err());
}
