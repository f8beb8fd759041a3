use std::path::PathBuf;

use cybervpn_testkit::Backend;
use serde_json::Value;

use crate::helpers::TestApp;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// `docs/openapi.json` is the document the code generates; `make docs` refreshes it.
#[test]
fn openapi_document_matches_the_code() {
    let generated = cybervpn_api::openapi()
        .to_pretty_json()
        .expect("document serializes")
        + "\n";
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run `make docs` and commit the result"
    );
}

#[test]
fn document_is_openapi_3_1_and_lists_every_route() {
    let doc: Value = serde_json::to_value(cybervpn_api::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/api/v1/plans", "get"),
        ("/api/v1/plans/{id}", "get"),
        ("/api/v1/plans/quote", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} documented"
        );
    }
}

#[tokio::test]
async fn served_document_and_offline_docs_ui() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert_eq!(
        served,
        serde_json::to_value(cybervpn_api::openapi()).unwrap()
    );

    let redirect = app.get("/docs").await;
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");

    // The UI's assets are vendored into the binary, not fetched from a CDN.
    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    let init = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/v1/openapi.json"), "{init}");
    app.stop().await;
}
