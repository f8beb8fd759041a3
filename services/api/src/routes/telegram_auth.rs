//! `POST /api/v1/auth/telegram`: the Mini App and the Login Widget sign in as the customer the bot knows.
//!
//! Customers are keyed by Telegram id: the first sign-in (here or `/start` in the bot) creates the account,
//! every later one finds it. The data is verified with the bot token exactly as Telegram documents it
//! ([`cybervpn_auth::telegram`]); it is never logged.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, post, web};
use chrono::{SubsecRound, Utc};
use cybervpn_auth::{TelegramAuthError, verify_init_data, verify_login_widget};
use cybervpn_db::DbError;
use cybervpn_domain::{
    Customer, CustomerStatus, DomainError, ErrorCode, Language, NewCustomer, Principal, TelegramId,
    Username,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    auth::Limits,
    error::{ApiError, Problem},
    routes::{
        auth::{LoginResponse, signed_in},
        referral,
    },
    state::AppState,
};

/// Telegram sign-in data: a Mini App's `initData`, or what the Login Widget returned.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelegramSignInRequest {
    /// The raw `Telegram.WebApp.initData` query string, exactly as the Mini App received it.
    #[schema(example = "query_id=AAH…&user=%7B%22id%22%3A42…%7D&auth_date=1700000000&hash=…")]
    init_data: Option<String>,
    /// The Login Widget's fields, exactly as its callback received them.
    widget: Option<TelegramWidgetData>,
}

/// The Login Widget's authorization data.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelegramWidgetData {
    /// Telegram user id.
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    photo_url: Option<String>,
    /// Unix time Telegram signed the data.
    auth_date: i64,
    /// Hex HMAC-SHA-256 of the other fields.
    hash: String,
}

impl TelegramWidgetData {
    /// Every received field as the text Telegram signed.
    fn fields(self) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::from([
            ("id".to_owned(), self.id.to_string()),
            ("auth_date".to_owned(), self.auth_date.to_string()),
            ("hash".to_owned(), self.hash),
        ]);
        for (key, value) in [
            ("first_name", self.first_name),
            ("last_name", self.last_name),
            ("username", self.username),
            ("photo_url", self.photo_url),
        ] {
            if let Some(value) = value {
                fields.insert(key.to_owned(), value);
            }
        }
        fields
    }
}

/// The Telegram user a sign-in or the bot's `/start` names.
pub(crate) struct TelegramProfile<'a> {
    /// Telegram user id.
    pub(crate) id: i64,
    /// Their Telegram username, possibly empty.
    pub(crate) username: &'a str,
    /// Their client's language tag, possibly empty.
    pub(crate) language_code: &'a str,
}

/// The customer of a Telegram user, registered now if new (true): the one path for the bot and the apps.
pub(crate) async fn telegram_customer(
    state: &AppState,
    profile: &TelegramProfile<'_>,
) -> Result<(Customer, bool), ApiError> {
    let telegram_id = TelegramId::new(profile.id)?;
    let customers = state.db.customers();
    if let Some(customer) = customers.find_by_telegram_id(telegram_id).await? {
        return Ok((customer, false));
    }
    let language = Language::parse_tag(profile.language_code).unwrap_or_default();
    // Their Telegram username when it is a valid one, else `tg_<id>`.
    let username = Username::parse(profile.username)
        .or_else(|_| Username::parse(&format!("tg_{}", profile.id)))?;
    let new = NewCustomer::new(None, Some(telegram_id), username, language)?;
    match customers.create(new, Utc::now().trunc_subsecs(6)).await {
        Ok(customer) => {
            state
                .publish_live(
                    cybervpn_domain::LiveTopic::Customers,
                    "customer_registered",
                    serde_json::json!({ "customer_id": customer.id.as_uuid(), "via": "telegram" }),
                )
                .await;
            Ok((customer, true))
        }
        // Registered by a concurrent sign-in or /start: use that one.
        Err(DbError::Domain(DomainError::Conflict { .. })) => customers
            .find_by_telegram_id(telegram_id)
            .await?
            .map(|customer| (customer, false))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "registration raced; try again",
                )
            }),
        Err(err) => Err(err.into()),
    }
}

fn refused(err: TelegramAuthError, field: &'static str) -> ApiError {
    match err {
        TelegramAuthError::Malformed(_) => ApiError::invalid_field(field, err.to_string()),
        TelegramAuthError::BadHash => ApiError::new(ErrorCode::Unauthorized, err.to_string()),
        TelegramAuthError::Expired => ApiError::new(ErrorCode::TokenExpired, err.to_string()),
    }
}

/// Signs in with Telegram (Mini App `init_data` or Login Widget `widget`), registering the customer the first
/// time; the same customer as the bot's.
#[utoipa::path(
    tag = "auth",
    request_body = TelegramSignInRequest,
    responses(
        (status = 200, description = "Tokens, or `two_factor_required` with a pending token", body = LoginResponse),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed by our bot (`unauthorized`) or too old (`token_expired`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account disabled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither or both of `init_data` and `widget`, or malformed sign-in data", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Telegram sign-in is not configured (no bot token)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/telegram")]
pub(crate) async fn telegram_sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TelegramSignInRequest>,
) -> Result<web::Json<LoginResponse>, ApiError> {
    Limits::new(&state).per_ip("telegram-login", &req).await?;
    let Some(token) = &state.config.telegram.bot_token else {
        return Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "Telegram sign-in is not configured (telegram.bot_token)",
        ));
    };
    let now = Utc::now();
    let max_age = chrono::Duration::seconds(
        i64::try_from(state.config.telegram.auth_max_age_secs).unwrap_or(i64::MAX),
    );
    let user = match body.into_inner() {
        TelegramSignInRequest {
            init_data: Some(init_data),
            widget: None,
        } => verify_init_data(&init_data, token.expose(), now, max_age)
            .map_err(|err| refused(err, "init_data"))?,
        TelegramSignInRequest {
            init_data: None,
            widget: Some(widget),
        } => verify_login_widget(&widget.fields(), token.expose(), now, max_age)
            .map_err(|err| refused(err, "widget"))?,
        _ => {
            return Err(ApiError::invalid_field(
                "init_data",
                "send exactly one of init_data (Mini App) and widget (Login Widget)",
            ));
        }
    };
    let profile = TelegramProfile {
        id: user.id,
        username: user.username.as_deref().unwrap_or_default(),
        language_code: user.language_code.as_deref().unwrap_or_default(),
    };
    let (customer, created) = telegram_customer(&state, &profile).await?;
    if created {
        referral::ensure_code(state.db.conn(), customer.id).await?;
        tracing::info!(customer = %customer.id.as_uuid(), "customer registered through Telegram sign-in");
    }
    if customer.status == CustomerStatus::Disabled {
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    let principal = Principal::Customer(customer.id);
    Ok(web::Json(
        signed_in(&state, principal, "customer", now).await?,
    ))
}
