#![expect(clippy::unwrap_used, reason = "tests fail loudly")]
//! Drives the fake Bot API with plain HTTP calls (JSON, form, multipart, query string) and checks its answers,
//! its records and the updates it serves.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cybervpn_telegram_fake::{MemberStatus, TelegramFake, User};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const TOKEN: &str = "123456:TEST-token";

async fn start() -> TelegramFake {
    TelegramFake::start(TOKEN).await.unwrap()
}

fn alice() -> User {
    User::new(1001, "Alice")
        .with_username("alice")
        .with_language("ru")
}

/// POSTs a JSON body to a method; returns the status and the JSON answer.
async fn call(fake: &TelegramFake, method: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/{method}", fake.api_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn multipart(fake: &TelegramFake, method: &str, form: Form) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/{method}", fake.api_url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn bad_request(description: &str) -> Value {
    json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {description}")})
}

/// The header of a PNG of the given size (enough for Telegram's, and the fake's, size detection).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
    bytes
}

#[tokio::test]
async fn only_the_bot_token_is_served_and_unknown_methods_are_404() {
    let fake = start().await;
    let client = reqwest::Client::new();

    let response = client
        .post(format!("{}/bot999:wrong/getMe", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );

    let (status, body) = call(&fake, "sendSticker", json!({"chat_id": 1})).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 404, "description": "Not Found"})
    );

    // getMe with no body at all, as frankenstein sends it.
    let response = client
        .post(format!("{}/getMe", fake.api_url()))
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["ok"], json!(true));
    assert_eq!(me["result"]["id"], json!(123_456));
    assert_eq!(me["result"]["is_bot"], json!(true));
    assert_eq!(me["result"]["username"], json!("cybervpn_test_bot"));

    fake.set_bot_username("other_bot");
    // Query-string parameters on GET; method names are case-insensitive.
    let me: Value = client
        .get(format!("{}/getme", fake.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["result"]["username"], json!("other_bot"));

    let methods: Vec<String> = fake.calls().into_iter().map(|call| call.method).collect();
    assert_eq!(methods, ["sendSticker", "getMe", "getMe"]);
    assert_eq!(fake.calls()[0].status, 404);
}

#[tokio::test]
async fn get_updates_long_polls_until_an_update_is_pushed_and_offset_acknowledges() {
    let fake = start().await;
    let polling = fake.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        call(
            &polling,
            "getUpdates",
            json!({"offset": 0, "timeout": 20, "allowed_updates": ["message", "callback_query"]}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the poll must wait for an update");

    let update_id = fake.send_text(&alice(), alice().id, "/start ref_42");
    let (status, body) = poll.await.unwrap();
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let updates = body["result"].as_array().unwrap();
    assert_eq!(updates.len(), 1);
    let update = &updates[0];
    assert_eq!(update["update_id"], json!(update_id));
    let message = &update["message"];
    assert_eq!(message["text"], json!("/start ref_42"));
    assert_eq!(message["from"]["id"], json!(1001));
    assert_eq!(message["from"]["is_bot"], json!(false));
    assert_eq!(message["from"]["username"], json!("alice"));
    assert_eq!(message["from"]["language_code"], json!("ru"));
    assert_eq!(message["chat"]["id"], json!(1001));
    assert_eq!(message["chat"]["type"], json!("private"));
    assert!(message["date"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        message["entities"],
        json!([{"type": "bot_command", "offset": 0, "length": 6}])
    );

    // Not acknowledged yet: served again.
    let (_, again) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(again["result"][0]["update_id"], json!(update_id));

    // offset = last + 1 acknowledges it; a plain text has no entities.
    let second = fake.send_text(&alice(), alice().id, "hello");
    let (_, next) = call(&fake, "getUpdates", json!({"offset": update_id + 1})).await;
    let next = next["result"].as_array().unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["update_id"], json!(second));
    assert!(next[0]["message"].get("entities").is_none());
    call(&fake, "getUpdates", json!({"offset": second + 1})).await;
    assert!(fake.pending_updates().is_empty());

    // Nothing pushed: the poll returns empty after its timeout, not before.
    let started = Instant::now();
    let (status, empty) = call(
        &fake,
        "getUpdates",
        json!({"offset": second + 1, "timeout": 1}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(empty["result"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(950));

    // Kinds outside allowed_updates are never served.
    fake.pre_checkout(&alice(), "XTR", 100, "pay_1");
    let (_, filtered) = call(&fake, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(filtered["result"], json!([]));
}

#[tokio::test]
async fn a_newer_get_updates_ends_the_older_long_poll_with_409() {
    let fake = start().await;
    let polling = fake.clone();
    let first =
        tokio::spawn(async move { call(&polling, "getUpdates", json!({"timeout": 20})).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = call(&fake, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(status, 200);
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        json!(
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
        )
    );
}

#[tokio::test]
async fn send_photo_multipart_upload_is_recorded_with_its_bytes() {
    let fake = start().await;
    let image = png(64, 32);
    let form = Form::new()
        .text("chat_id", "1001")
        .text("caption", "<b>Your key</b>")
        .text("parse_mode", "HTML")
        .text(
            "reply_markup",
            r#"{"inline_keyboard":[[{"text":"Copy","callback_data":"copy:1"}]]}"#,
        )
        .part(
            "photo",
            Part::bytes(image.clone())
                .file_name("qr.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let (status, body) = multipart(&fake, "sendPhoto", form).await;
    assert_eq!(status, 200, "{body}");
    let message = &body["result"];
    assert_eq!(message["chat"]["id"], json!(1001));
    assert_eq!(message["caption"], json!("Your key"));
    assert_eq!(
        message["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        json!("copy:1")
    );
    let sizes = message["photo"].as_array().unwrap();
    let largest = sizes.last().unwrap();
    assert_eq!(largest["width"], json!(64));
    assert_eq!(largest["height"], json!(32));
    assert_eq!(largest["file_size"], json!(image.len()));

    let calls = fake.calls_of("sendPhoto");
    assert_eq!(calls.len(), 1);
    let upload = calls[0].file("photo").unwrap();
    assert_eq!(upload.filename, "qr.png");
    assert_eq!(upload.content_type.as_deref(), Some("image/png"));
    assert_eq!(upload.bytes, image);
    // Form fields come back typed: chat_id as a number, reply_markup as an object.
    assert_eq!(calls[0].params["chat_id"], json!(1001));
    assert!(calls[0].params["reply_markup"].is_object());
    assert_eq!(fake.sent_to(1001).len(), 1);

    // The returned file_id can be sent again; an unknown one cannot.
    let file_id = largest["file_id"].as_str().unwrap();
    let (status, again) = call(
        &fake,
        "sendPhoto",
        json!({"chat_id": 1001, "photo": file_id}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        again["result"]["photo"].as_array().unwrap().last().unwrap()["file_id"],
        json!(file_id)
    );
    let (status, body) = call(
        &fake,
        "sendPhoto",
        json!({"chat_id": 1001, "photo": "nope"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        bad_request("wrong file identifier/HTTP URL specified")
    );

    // attach://<name> points at another part.
    let form = Form::new()
        .text("chat_id", "1001")
        .text("photo", "attach://qr")
        .part("qr", Part::bytes(png(10, 10)).file_name("a.png"));
    let (status, _) = multipart(&fake, "sendPhoto", form).await;
    assert_eq!(status, 200);

    let form = Form::new()
        .text("chat_id", "1001")
        .text("caption", "x".repeat(1025))
        .part("photo", Part::bytes(image.clone()).file_name("qr.png"));
    let (status, body) = multipart(&fake, "sendPhoto", form).await;
    assert_eq!(status, 400);
    assert_eq!(body, bad_request("message caption is too long"));

    let form = Form::new().text("chat_id", "1001").part(
        "photo",
        Part::bytes(b"not a picture".to_vec()).file_name("qr.png"),
    );
    let (_, body) = multipart(&fake, "sendPhoto", form).await;
    assert_eq!(body, bad_request("IMAGE_PROCESS_FAILED"));

    let (_, body) = multipart(&fake, "sendPhoto", Form::new().text("chat_id", "1001")).await;
    assert_eq!(body, bad_request("there is no photo in the request"));

    // A document upload keeps its name and type.
    let form = Form::new().text("chat_id", "-1001234567890").part(
        "document",
        Part::bytes(b"{}".to_vec()).file_name("backup.json"),
    );
    let (status, body) = multipart(&fake, "sendDocument", form).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["result"]["document"]["file_name"],
        json!("backup.json")
    );
    assert_eq!(
        body["result"]["document"]["mime_type"],
        json!("application/json")
    );
    assert_eq!(body["result"]["chat"]["type"], json!("supergroup"));
}

#[tokio::test]
async fn send_message_is_validated_like_telegram() {
    let fake = start().await;
    let (status, body) = call(&fake, "sendMessage", json!({"text": "hi"})).await;
    assert_eq!(status, 400);
    assert_eq!(body, bad_request("chat_id is empty"));
    let (_, body) = call(&fake, "sendMessage", json!({"chat_id": 5, "text": "  "})).await;
    assert_eq!(body, bad_request("message text is empty"));
    let (_, body) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": "я".repeat(4097)}),
    )
    .await;
    assert_eq!(body, bad_request("message is too long"));
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": "я".repeat(4096)}),
    )
    .await;
    assert_eq!(status, 200);
    // The limit applies after the markup is parsed.
    let text = format!("<b>{}</b>", "a".repeat(4096));
    let (status, body) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": text, "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["text"], json!("a".repeat(4096)));
    let (_, body) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": "x", "parse_mode": "BBCode"}),
    )
    .await;
    assert_eq!(body, bad_request("unsupported parse_mode"));
    let (_, body) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": "1 < 2", "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(
        body,
        bad_request("can't parse entities: Unclosed start tag at byte offset 2")
    );
    let (_, body) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": "Total: 10.5", "parse_mode": "MarkdownV2"}),
    )
    .await;
    assert_eq!(body["error_code"], json!(400));

    let keyboard =
        |data: String| json!({"inline_keyboard": [[{"text": "Buy", "callback_data": data}]]});
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": "ok", "reply_markup": keyboard("d".repeat(64))}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": "ok", "reply_markup": keyboard("d".repeat(65))}),
    )
    .await;
    assert_eq!(body, bad_request("BUTTON_DATA_INVALID"));
    let (_, body) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 5, "text": "ok", "reply_markup": {"inline_keyboard": [[{"text": "Nothing"}]]}}),
    )
    .await;
    assert_eq!(
        body,
        bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    );

    // A form-encoded call with the keyboard as a JSON string works the same.
    let response = reqwest::Client::new()
        .post(format!("{}/sendMessage", fake.api_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "chat_id=5&text=Hello+there&reply_markup={}",
            "%7B%22inline_keyboard%22%3A%5B%5B%7B%22text%22%3A%22A%22%2C%22callback_data%22%3A%22a%22%7D%5D%5D%7D"
        ))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["text"], json!("Hello there"));
    assert_eq!(
        body["result"]["reply_markup"],
        json!({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]})
    );
    // Message ids grow.
    let sent = fake.sent_to(5);
    let ids: Vec<i64> = sent
        .iter()
        .map(|call| call.result().unwrap()["message_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
}

#[tokio::test]
async fn callback_queries_must_be_known_and_answered_once() {
    let fake = start().await;
    let (_, sent) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 1001, "text": "Pick a plan", "reply_markup": {"inline_keyboard": [[{"text": "1 month", "callback_data": "plan:1m"}]]}}),
    )
    .await;
    let message_id = sent["result"]["message_id"].as_i64().unwrap();

    let query_id = fake.press_button(&alice(), message_id, "plan:1m");
    let (_, updates) = call(&fake, "getUpdates", json!({})).await;
    let query = &updates["result"][0]["callback_query"];
    assert_eq!(query["id"], json!(query_id));
    assert_eq!(query["from"]["id"], json!(1001));
    assert_eq!(query["data"], json!("plan:1m"));
    assert_eq!(query["message"]["message_id"], json!(message_id));
    assert_eq!(query["message"]["text"], json!("Pick a plan"));
    assert!(
        query["chat_instance"]
            .as_str()
            .is_some_and(|instance| !instance.is_empty())
    );
    assert_eq!(fake.unanswered_callbacks(), std::slice::from_ref(&query_id));

    let (status, body) = call(
        &fake,
        "answerCallbackQuery",
        json!({"callback_query_id": query_id, "text": "Done"}),
    )
    .await;
    assert_eq!((status, body["result"].clone()), (200, json!(true)));
    assert!(fake.unanswered_callbacks().is_empty());

    let invalid =
        bad_request("query is too old and response timeout expired or query ID is invalid");
    let (status, body) = call(
        &fake,
        "answerCallbackQuery",
        json!({"callback_query_id": query_id}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body, invalid);
    let (_, body) = call(
        &fake,
        "answerCallbackQuery",
        json!({"callback_query_id": "42"}),
    )
    .await;
    assert_eq!(body, invalid);
}

#[tokio::test]
async fn edits_and_deletes_follow_the_message() {
    let fake = start().await;
    let (_, sent) = call(&fake, "sendMessage", json!({"chat_id": 7, "text": "v1", "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "a"}]]}})).await;
    let id = sent["result"]["message_id"].as_i64().unwrap();

    let (_, body) = call(&fake, "editMessageText", json!({"chat_id": 7, "message_id": id, "text": "v1", "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "a"}]]}})).await;
    assert_eq!(
        body,
        bad_request(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"
        )
    );

    let (status, body) = call(
        &fake,
        "editMessageText",
        json!({"chat_id": 7, "message_id": id, "text": "v2"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["text"], json!("v2"));
    assert!(body["result"]["edit_date"].is_number());
    // Editing the text without a keyboard removes it, as on Telegram.
    assert!(fake.message(id).unwrap().get("reply_markup").is_none());

    let markup = json!({"inline_keyboard": [[{"text": "b", "callback_data": "b"}]]});
    let (status, _) = call(
        &fake,
        "editMessageReplyMarkup",
        json!({"chat_id": 7, "message_id": id, "reply_markup": markup}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fake.message(id).unwrap()["reply_markup"], markup);

    let (_, body) = call(
        &fake,
        "editMessageText",
        json!({"chat_id": 8, "message_id": id, "text": "v3"}),
    )
    .await;
    assert_eq!(body, bad_request("message to edit not found"));
    let user_message = fake.send_text(&alice(), 1001, "hello");
    let user_message_id = fake.pending_updates()[0]["message"]["message_id"]
        .as_i64()
        .unwrap();
    assert!(user_message > 0);
    let (_, body) = call(
        &fake,
        "editMessageText",
        json!({"chat_id": 1001, "message_id": user_message_id, "text": "x"}),
    )
    .await;
    assert_eq!(body, bad_request("message can't be edited"));

    let (status, _) = call(
        &fake,
        "deleteMessage",
        json!({"chat_id": 7, "message_id": id}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(fake.message(id).is_none());
    let (_, body) = call(
        &fake,
        "deleteMessage",
        json!({"chat_id": 7, "message_id": id}),
    )
    .await;
    assert_eq!(body, bad_request("message to delete not found"));
}

#[tokio::test]
async fn stars_invoices_are_validated() {
    let fake = start().await;
    let invoice = |changes: Value| {
        let mut params = json!({
            "chat_id": 1001,
            "title": "1 month",
            "description": "CyberVPN, 30 days",
            "payload": "pay_0190a1b2",
            "currency": "XTR",
            "prices": [{"label": "1 month", "amount": 150}],
        });
        for (key, value) in changes.as_object().unwrap() {
            params[key] = value.clone();
        }
        params
    };

    let (status, body) = call(&fake, "sendInvoice", invoice(json!({"provider_token": ""}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["invoice"],
        json!({"title": "1 month", "description": "CyberVPN, 30 days", "start_parameter": "", "currency": "XTR", "total_amount": 150})
    );

    let (_, body) = call(
        &fake,
        "sendInvoice",
        invoice(json!({"prices": [{"label": "a", "amount": 100}, {"label": "b", "amount": 50}]})),
    )
    .await;
    assert_eq!(body, bad_request("STARS_INVOICE_INVALID"));
    let (_, body) = call(
        &fake,
        "sendInvoice",
        invoice(json!({"provider_token": "284685063:TEST:abc"})),
    )
    .await;
    assert_eq!(body, bad_request("STARS_INVOICE_INVALID"));
    let (_, body) = call(
        &fake,
        "sendInvoice",
        invoice(json!({"payload": "p".repeat(129)})),
    )
    .await;
    assert_eq!(body, bad_request("INVOICE_PAYLOAD_INVALID"));
    let (status, _) = call(
        &fake,
        "sendInvoice",
        invoice(json!({"payload": "p".repeat(128)})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = call(&fake, "sendInvoice", invoice(json!({"payload": ""}))).await;
    assert_eq!(body, bad_request("parameter \"payload\" is required"));
    let (_, body) = call(
        &fake,
        "sendInvoice",
        invoice(json!({"prices": [{"label": "a", "amount": 0}]})),
    )
    .await;
    assert_eq!(body, bad_request("CURRENCY_TOTAL_AMOUNT_INVALID"));
    let (_, body) = call(&fake, "sendInvoice", invoice(json!({"currency": "RUB"}))).await;
    assert_eq!(body, bad_request("PAYMENT_PROVIDER_INVALID"));

    let (status, link) = call(&fake, "createInvoiceLink", invoice(json!({}))).await;
    assert_eq!(status, 200);
    assert!(
        link["result"]
            .as_str()
            .unwrap()
            .starts_with("https://t.me/$")
    );
    assert_eq!(fake.sent_to(1001).len(), 2);
}

#[tokio::test]
async fn pre_checkout_answers_are_recorded_with_their_delay() {
    let fake = start().await;
    let buyer = alice();
    let query_id = fake.pre_checkout(&buyer, "XTR", 150, "pay_1");
    let (_, updates) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(
        updates["result"][0]["pre_checkout_query"],
        json!({"id": query_id, "from": buyer.to_json(), "currency": "XTR", "total_amount": 150, "invoice_payload": "pay_1"})
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (status, _) = call(
        &fake,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": query_id, "ok": true}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = call(
        &fake,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": query_id, "ok": true}),
    )
    .await;
    assert_eq!(
        body,
        bad_request("query is too old and response timeout expired or query ID is invalid")
    );

    let declined = fake.pre_checkout(&buyer, "XTR", 150, "pay_2");
    let (_, body) = call(
        &fake,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": declined, "ok": false}),
    )
    .await;
    assert_eq!(body, bad_request("ERROR_MESSAGE_EMPTY"));
    let (status, _) = call(
        &fake,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": declined, "ok": false, "error_message": "Price changed"}),
    )
    .await;
    assert_eq!(status, 200);

    let answers = fake.precheckout_answers();
    assert_eq!(answers.len(), 2);
    assert_eq!(
        (answers[0].query_id.as_str(), answers[0].ok),
        (query_id.as_str(), true)
    );
    assert!(answers[0].elapsed >= Duration::from_millis(120));
    assert!(answers[0].elapsed < Duration::from_secs(10));
    assert_eq!(answers[0].error_message, None);
    assert_eq!(answers[1].query_id, declined);
    assert!(!answers[1].ok);
    assert_eq!(answers[1].error_message.as_deref(), Some("Price changed"));
}

#[tokio::test]
async fn star_refunds_need_a_known_charge_and_happen_once() {
    let fake = start().await;
    let buyer = alice();
    let update_id = fake.successful_payment(&buyer, "XTR", 150, "pay_1", "stxCHARGE1");
    let (_, updates) = call(&fake, "getUpdates", json!({})).await;
    let update = &updates["result"][0];
    assert_eq!(update["update_id"], json!(update_id));
    assert_eq!(
        update["message"]["successful_payment"],
        json!({"currency": "XTR", "total_amount": 150, "invoice_payload": "pay_1", "telegram_payment_charge_id": "stxCHARGE1", "provider_payment_charge_id": ""})
    );
    assert_eq!(update["message"]["chat"]["id"], json!(1001));

    let refund = |user_id: i64, charge: &str| json!({"user_id": user_id, "telegram_payment_charge_id": charge});
    assert!(!fake.refunded("stxCHARGE1"));
    let (_, body) = call(&fake, "refundStarPayment", refund(2002, "stxCHARGE1")).await;
    assert_eq!(body, bad_request("CHARGE_NOT_FOUND"));
    let (status, body) = call(&fake, "refundStarPayment", refund(1001, "stxCHARGE1")).await;
    assert_eq!((status, body["result"].clone()), (200, json!(true)));
    assert!(fake.refunded("stxCHARGE1"));
    let (_, body) = call(&fake, "refundStarPayment", refund(1001, "stxCHARGE1")).await;
    assert_eq!(body, bad_request("CHARGE_ALREADY_REFUNDED"));
    let (_, body) = call(&fake, "refundStarPayment", refund(1001, "stxUNKNOWN")).await;
    assert_eq!(body, bad_request("CHARGE_NOT_FOUND"));

    fake.add_charge(3003, "stxADDED");
    let (status, _) = call(&fake, "refundStarPayment", refund(3003, "stxADDED")).await;
    assert_eq!(status, 200);
    assert!(fake.refunded("stxADDED"));

    fake.refunded_payment(&buyer, "XTR", 150, "pay_1", "stxCHARGE1");
    let (_, updates) = call(&fake, "getUpdates", json!({"offset": update_id + 1})).await;
    assert_eq!(
        updates["result"][0]["message"]["refunded_payment"]["telegram_payment_charge_id"],
        json!("stxCHARGE1")
    );
}

#[tokio::test]
async fn blocked_users_get_403_and_rate_limits_get_429() {
    let fake = start().await;
    fake.block_user(1001);
    let (status, body) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 1001, "text": "news"}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    );
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 1002, "text": "news"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(fake.sent_to(1001).is_empty());
    assert_eq!(fake.calls_of("sendMessage")[0].status, 403);
    fake.unblock_user(1001);
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 1001, "text": "news"}),
    )
    .await;
    assert_eq!(status, 200);

    fake.rate_limit_next(2, 7);
    for _ in 0..2 {
        let (status, body) =
            call(&fake, "sendMessage", json!({"chat_id": 1001, "text": "x"})).await;
        assert_eq!(status, 429);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}})
        );
    }
    // getMe is not a send: unaffected.
    let (status, _) = call(&fake, "getMe", json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = call(&fake, "sendMessage", json!({"chat_id": 1001, "text": "x"})).await;
    assert_eq!(status, 200);
    assert_eq!(fake.sent_to(1001).len(), 2);
}

#[tokio::test]
async fn the_global_rate_refuses_sends_beyond_the_limit_per_second() {
    let fake = start().await;
    fake.enforce_global_rate(5);
    let mut statuses = Vec::new();
    for chat in 0..8 {
        let (status, body) = call(
            &fake,
            "sendMessage",
            json!({"chat_id": 100 + chat, "text": "promo"}),
        )
        .await;
        if status == 429 {
            assert_eq!(body["parameters"]["retry_after"], json!(1));
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (status, _) = call(
        &fake,
        "sendMessage",
        json!({"chat_id": 200, "text": "promo"}),
    )
    .await;
    assert_eq!(status, 200);

    // A sender pacing itself under the limit never sees 429.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    for chat in 0..10 {
        let (status, _) = call(
            &fake,
            "sendMessage",
            json!({"chat_id": 300 + chat, "text": "promo"}),
        )
        .await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(210)).await;
    }
}

/// A webhook receiver that checks the secret header; returns its URL and what it received.
async fn receiver(secret: &'static str) -> (String, Arc<Mutex<Vec<(Option<String>, Value)>>>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}/telegram/webhook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let record = Arc::clone(&record);
                    async move {
                        let header = request
                            .headers()
                            .get("X-Telegram-Bot-Api-Secret-Token")
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned);
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let status = if header.as_deref() == Some(secret) {
                            200
                        } else {
                            401
                        };
                        record
                            .lock()
                            .unwrap()
                            .push((header, serde_json::from_slice(&body).unwrap()));
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, received)
}

#[tokio::test]
async fn webhook_mode_conflicts_with_get_updates_and_delivers_with_the_secret() {
    let fake = start().await;
    let (url, received) = receiver("s3cret_Token-1").await;

    let (_, body) = call(
        &fake,
        "setWebhook",
        json!({"url": url, "secret_token": "bad secret!"}),
    )
    .await;
    assert_eq!(
        body,
        bad_request("secret token contains unallowed characters")
    );

    // A long poll in progress ends when the webhook is set.
    let polling = fake.clone();
    let poll =
        tokio::spawn(async move { call(&polling, "getUpdates", json!({"timeout": 20})).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = call(
        &fake,
        "setWebhook",
        json!({"url": url, "secret_token": "s3cret_Token-1"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"ok": true, "result": true, "description": "Webhook was set"})
    );
    let conflict = json!({
        "ok": false,
        "error_code": 409,
        "description": "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    });
    assert_eq!(poll.await.unwrap(), (409, conflict.clone()));
    assert_eq!(call(&fake, "getUpdates", json!({})).await, (409, conflict));

    let first = fake.send_text(&alice(), 1001, "/start");
    let second = fake.send_text(&alice(), 1001, "/help");
    let (_, info) = call(&fake, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["url"], json!(url));
    assert_eq!(info["result"]["pending_update_count"], json!(2));

    assert_eq!(fake.deliver_webhook().await.unwrap(), [200, 200]);
    assert!(fake.pending_updates().is_empty());
    {
        let received = received.lock().unwrap();
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].0.as_deref(), Some("s3cret_Token-1"));
        assert_eq!(received[0].1["update_id"], json!(first));
        assert_eq!(received[1].1["update_id"], json!(second));
        assert_eq!(received[1].1["message"]["text"], json!("/help"));
    }

    // A forged delivery without the header is refused by the receiver.
    assert_eq!(
        fake.post_webhook(&json!({"update_id": 1}), None)
            .await
            .unwrap(),
        401
    );

    let (_, body) = call(&fake, "deleteWebhook", json!({})).await;
    assert_eq!(body["description"], json!("Webhook was deleted"));
    assert!(fake.webhook_url().is_none());
    let (status, _) = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(status, 200);
    assert!(fake.deliver_webhook().await.is_err());
}

#[tokio::test]
async fn chat_members_and_commands() {
    let fake = start().await;
    fake.send_text(&alice(), 1001, "hi");
    fake.set_chat_member(-1_001_234_567_890, 1001, MemberStatus::Member);
    let member = |chat_id: i64| json!({"chat_id": chat_id, "user_id": 1001});

    let (_, body) = call(&fake, "getChatMember", member(-1_001_234_567_890)).await;
    assert_eq!(body["result"]["status"], json!("member"));
    assert_eq!(body["result"]["user"]["username"], json!("alice"));
    let (_, body) = call(&fake, "getChatMember", member(-1_009_999_999_999)).await;
    assert_eq!(body["result"]["status"], json!("left"));
    let (_, body) = call(&fake, "getChatMember", member(1001)).await;
    assert_eq!(body["result"]["status"], json!("member"));

    let (_, body) = call(
        &fake,
        "setMyCommands",
        json!({"commands": [{"command": "Start", "description": "Begin"}]}),
    )
    .await;
    assert_eq!(body, bad_request("BOT_COMMAND_INVALID"));
    let commands = json!([{"command": "start", "description": "Begin"}, {"command": "buy", "description": "Buy a plan"}]);
    let (status, _) = call(
        &fake,
        "setMyCommands",
        json!({"commands": commands, "language_code": "ru"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fake.my_commands(Some("ru")), Some(commands.clone()));
    assert_eq!(fake.my_commands(None), None);
    let (_, listed) = call(&fake, "getMyCommands", json!({"language_code": "ru"})).await;
    assert_eq!(listed["result"], commands);
    call(&fake, "deleteMyCommands", json!({"language_code": "ru"})).await;
    assert_eq!(fake.my_commands(Some("ru")), None);
}
