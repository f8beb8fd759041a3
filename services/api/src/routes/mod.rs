//! Route table: every endpoint is registered here, and the OpenAPI document is derived from it.

use actix_web::{HttpRequest, dev::ResourceDef, web};
use utoipa::openapi::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ApiError;

pub(crate) mod admin_auth;
pub(crate) mod analytics;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod customer_subscriptions;
pub(crate) mod devices;
pub(crate) mod health;
pub(crate) mod invites;
pub(crate) mod loyalty;
pub(crate) mod operations;
pub(crate) mod payments;
pub(crate) mod payments_admin;
pub(crate) mod plans;
pub(crate) mod plans_admin;
pub(crate) mod promo;
pub(crate) mod referral;
pub(crate) mod revenuecat;
pub(crate) mod staff;
pub(crate) mod telegram_auth;
pub(crate) mod trial;
pub(crate) mod two_factor;
pub(crate) mod users;
pub(crate) mod webhooks;
pub(crate) mod ws;

/// Registers every documented route.
pub(crate) fn configure(cfg: &mut ServiceConfig<'_>) {
    cfg.service(health::health)
        .service(health::ready)
        .service(health::metrics)
        .service(
            utoipa_actix_web::scope("/api/v1")
                .service(plans::list_plans)
                .service(plans::quote)
                .service(plans::get_plan)
                .service(auth::register)
                .service(auth::login)
                .service(auth::login_two_factor)
                .service(telegram_auth::telegram_sign_in)
                .service(auth::refresh)
                .service(auth::logout)
                .service(auth::logout_all)
                .service(auth::me)
                .service(trial::activate_trial)
                .service(trial::trial_status)
                .service(referral::my_referral)
                .service(invites::my_invites)
                .service(invites::redeem_code)
                .service(loyalty::my_loyalty)
                .service(devices::register_device)
                .service(devices::list_devices)
                .service(devices::delete_device)
                .service(customer_subscriptions::list_my_subscriptions)
                .service(customer_subscriptions::start_purchase)
                .service(customer_subscriptions::subscription_config)
                .service(two_factor::enable)
                .service(two_factor::verify)
                .service(two_factor::disable)
                .service(admin_auth::staff_login)
                .service(admin_auth::staff_login_two_factor)
                .service(admin_auth::staff_me)
                .service(admin_auth::telegram_link_code)
                .service(users::list_customers)
                .service(users::get_customer)
                .service(loyalty::customer_loyalty)
                .service(users::update_customer)
                .service(users::delete_customer)
                .service(users::ban_customer)
                .service(users::unban_customer)
                .service(staff::list_staff)
                .service(staff::create_staff)
                .service(staff::update_staff)
                .service(staff::reset_staff_two_factor)
                .service(audit::list_audit_log)
                .service(plans_admin::list_all_plans)
                .service(plans_admin::create_plan)
                .service(plans_admin::update_plan)
                .service(plans_admin::deactivate_plan)
                .service(operations::list_servers)
                .service(operations::get_server)
                .service(operations::server_stats)
                .service(operations::monitoring_health)
                .service(operations::monitoring_bandwidth)
                .service(operations::monitoring_stats)
                .service(operations::extend_subscription)
                .service(operations::reset_traffic)
                .service(operations::revoke_subscription)
                .service(operations::list_dead_jobs)
                .service(operations::redrive_dead_job)
                .service(ws::ws_ticket)
                .service(ws::ws_monitoring)
                .service(ws::ws_notifications)
                .service(payments::list_providers)
                .service(payments::create_payment)
                .service(payments::get_payment)
                .service(payments::create_crypto_invoice)
                .service(promo::validate_promo)
                .service(promo::list_promo_codes)
                .service(promo::get_promo_code)
                .service(promo::create_promo_code)
                .service(promo::update_promo_code)
                .service(promo::deactivate_promo_code)
                .service(payments_admin::list_payments)
                .service(payments_admin::get_payment_admin)
                .service(payments_admin::refund_payment_admin)
                .service(invites::list_rules)
                .service(invites::set_rule)
                .service(invites::list_promotions)
                .service(invites::create_promotion)
                .service(invites::delete_promotion)
                .service(invites::issue_invites)
                .service(invites::list_invites)
                .service(invites::revoke_invite)
                .service(analytics::revenue)
                .service(analytics::payments)
                .service(analytics::growth)
                .service(analytics::conversions)
                .service(analytics::subscriptions)
                .service(webhooks::remnawave_webhook)
                .service(payments::cryptobot_webhook)
                .service(payments::stripe_webhook)
                .service(payments::yookassa_webhook)
                .service(revenuecat::revenuecat_webhook),
        );
}

/// Known path patterns with the methods each accepts, to answer 405 instead of 404.
pub(crate) struct RouteTable(Vec<(ResourceDef, Vec<&'static str>)>);

impl RouteTable {
    /// Builds the table from the OpenAPI document, which is itself derived from the registered routes.
    pub(crate) fn from_openapi(doc: &OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods: Vec<&str> = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(routes)
    }
}

/// Answers requests no route matched: 405 when the path exists with other methods, 404 otherwise.
pub(crate) async fn fallback(
    req: HttpRequest,
    routes: web::Data<RouteTable>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let path = req.path();
    let mut allowed: Vec<&str> = routes
        .0
        .iter()
        .filter(|(def, _)| def.is_match(path))
        .flat_map(|(_, methods)| methods.iter().copied())
        .collect();
    if allowed.is_empty() {
        return Err(ApiError::new(
            cybervpn_domain::ErrorCode::RouteNotFound,
            format!("no route for {path}"),
        ));
    }
    allowed.sort_unstable();
    allowed.dedup();
    Err(ApiError::method_not_allowed(allowed.join(", ")))
}
