use std::collections::BTreeSet;

use cybervpn_testkit::Backend;
use serde_json::{Value, json};

use cybervpn_testkit::on_both_backends;

use crate::helpers::{TestApp, assert_problem};

on_both_backends!(
    fresh_database_lists_the_default_catalogue,
    one_plan_by_id,
    quote_prices_a_plan_in_a_currency,
);

async fn fresh_database_lists_the_default_catalogue(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get("/api/v1/plans").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: Value = response.json().await.unwrap();
    let plans = body["plans"].as_array().expect("plans array");
    assert_eq!(plans.len(), 16);

    let combos: BTreeSet<(String, u64)> = plans
        .iter()
        .map(|p| {
            (
                p["tier"].as_str().unwrap().to_owned(),
                p["duration_days"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, u64)> = ["basic", "pro", "ultra", "cyber"]
        .iter()
        .flat_map(|tier| [30, 90, 180, 365].map(|d| ((*tier).to_owned(), d)))
        .collect();
    assert_eq!(combos, expected, "every tier × duration exactly once");

    for plan in plans {
        let currencies: Vec<&str> = plan["prices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["currency"].as_str().unwrap())
            .collect();
        assert_eq!(currencies, ["USD", "RUB", "XTR"], "{plan}");
        for price in plan["prices"].as_array().unwrap() {
            assert!(price["amount_minor"].as_i64().unwrap() > 0, "{price}");
            assert!(price["amount_minor"].is_i64(), "money is an integer");
        }
        assert_eq!(
            plan["code"],
            format!(
                "{}_{}",
                plan["tier"].as_str().unwrap(),
                plan["duration_days"]
            )
        );
    }
    let basic_30 = plans.iter().find(|p| p["code"] == "basic_30").unwrap();
    assert_eq!(
        basic_30["prices"][0],
        json!({"currency": "USD", "amount_minor": 399, "amount": "3.99"})
    );
    let ultra = plans.iter().find(|p| p["tier"] == "ultra").unwrap();
    assert_eq!(
        ultra["traffic_limit_bytes"],
        Value::Null,
        "ultra is unlimited"
    );
    app.stop().await;
}

async fn one_plan_by_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let list: Value = app.get("/api/v1/plans").await.json().await.unwrap();
    let first = &list["plans"][0];
    let id = first["id"].as_str().unwrap();

    let response = app.get(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(response.status(), 200);
    let plan: Value = response.json().await.unwrap();
    assert_eq!(&plan, first);

    let missing = app
        .get("/api/v1/plans/00000000-0000-7000-8000-000000000000")
        .await;
    let body = assert_problem(missing, 404, "not_found").await;
    assert_eq!(body["detail"], "plan not found");

    let bad_id = app.get("/api/v1/plans/not-a-uuid").await;
    assert_problem(bad_id, 422, "validation_failed").await;
    app.stop().await;
}

async fn quote_prices_a_plan_in_a_currency(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let list: Value = app.get("/api/v1/plans").await.json().await.unwrap();
    let pro_90 = list["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "pro_90")
        .unwrap();

    let response = app
        .post_json(
            "/api/v1/plans/quote",
            &json!({"plan_id": pro_90["id"], "currency": "RUB"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let quote: Value = response.json().await.unwrap();
    // 549.00 RUB a month × 3 months, 10 % off = 1482.30 RUB.
    assert_eq!(
        quote,
        json!({
            "plan_id": pro_90["id"],
            "code": "pro_90",
            "price": {"currency": "RUB", "amount_minor": 148_230, "amount": "1482.30"}
        })
    );

    let unknown = app
        .post_json(
            "/api/v1/plans/quote",
            &json!({"plan_id": "00000000-0000-7000-8000-000000000000", "currency": "USD"}),
        )
        .await;
    assert_problem(unknown, 404, "not_found").await;
    app.stop().await;
}
