//! Every class of bad input gets a precise 4xx problem, never a 500.

use cybervpn_testkit::Backend;
use serde_json::json;

use cybervpn_testkit::on_both_backends;

use crate::helpers::{TestApp, assert_problem};

on_both_backends!(bad_bodies_get_precise_problems);

async fn bad_bodies_get_precise_problems(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.api.body_limit_bytes = 1024).await;
    let url = app.url("/api/v1/plans/quote");

    let malformed = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"plan_id\": ")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400, "malformed_json").await;

    let wrong_type = app
        .post_json(
            "/api/v1/plans/quote",
            &json!({"plan_id": 42, "currency": "USD"}),
        )
        .await;
    assert_problem(wrong_type, 422, "validation_failed").await;

    let bad_currency = app
        .post_json(
            "/api/v1/plans/quote",
            &json!({"plan_id": "00000000-0000-7000-8000-000000000000", "currency": "EUR"}),
        )
        .await;
    assert_problem(bad_currency, 422, "validation_failed").await;

    let unknown_field = app
        .post_json(
            "/api/v1/plans/quote",
            &json!({"plan_id": "00000000-0000-7000-8000-000000000000", "currency": "USD", "x": 1}),
        )
        .await;
    assert_problem(unknown_field, 422, "validation_failed").await;

    let oversized = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(format!("{{\"pad\": \"{}\"}}", "x".repeat(4096)))
        .send()
        .await
        .unwrap();
    assert_problem(oversized, 413, "payload_too_large").await;

    let not_json = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, 415, "unsupported_media_type").await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_are_405() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let missing = app.get("/api/v1/nothing-here").await;
    assert_problem(missing, 404, "route_not_found").await;

    let wrong_method = app
        .client
        .delete(app.url("/api/v1/plans"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_method
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap()),
        Some("GET, POST")
    );
    assert_problem(wrong_method, 405, "method_not_allowed").await;

    let get_on_post_route = app.get("/api/v1/plans/quote").await;
    // `/api/v1/plans/{id}` also matches this path, so GET reaches it and rejects the id as a UUID.
    assert_problem(get_on_post_route, 422, "validation_failed").await;

    let put_with_id = app
        .client
        .put(app.url("/api/v1/plans/00000000-0000-7000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    assert_problem(put_with_id, 405, "method_not_allowed").await;
    app.stop().await;
}

#[tokio::test]
async fn allow_lists_every_method_of_every_matching_route() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .client
        .put(app.url("/api/v1/plans/quote"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("allow").map(|v| v.to_str().unwrap()),
        Some("DELETE, GET, PATCH, POST"),
        "`quote` takes POST and `{{id}}` takes GET, PATCH and DELETE"
    );
    assert_problem(response, 405, "method_not_allowed").await;
    app.stop().await;
}
