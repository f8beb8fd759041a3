//! The admin panel in the bot: `/link CODE` ties the Telegram account to a staff account; `/admin` opens the
//! panel. The api checks every action against the staff role, exactly as the admin REST API does.

use cybervpn_rpc::bot::v1 as pb;
use frankenstein::types::User;
use tonic::{Code, Status};

use crate::{App, DIALOG_TTL, Lang, button, keyboard, short_date, text, text_with, user_id};

/// Dialogue state: the next text is a customer search.
pub(crate) const DIALOG_ADMIN_SEARCH: i64 = 2;
/// Days the panel's extend button adds.
const EXTEND_DAYS: u32 = 30;

impl App {
    pub(crate) async fn link(&self, user: &User, chat: i64, lang: Lang, code: &str) {
        let linked = self
            .admin
            .clone()
            .link_staff(pb::LinkStaffRequest {
                telegram_user_id: user_id(user),
                code: code.to_owned(),
            })
            .await;
        let body = match linked {
            Ok(linked) => text_with(lang, "admin-linked", &[("role", linked.into_inner().role)]),
            Err(status) if status.code() == Code::PermissionDenied => {
                text(lang, "admin-link-failed")
            }
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        self.send(chat, &body, None).await;
    }

    pub(crate) async fn admin_menu(&self, user: &User, chat: i64, lang: Lang) {
        let staff = self
            .admin
            .clone()
            .get_staff(pb::GetStaffRequest {
                telegram_user_id: user_id(user),
            })
            .await;
        let staff = match staff {
            Ok(staff) => staff.into_inner(),
            Err(status) => return self.admin_fail(chat, lang, &status).await,
        };
        let rows = vec![
            vec![
                button(text(lang, "button-admin-stats"), "adm:stats"),
                button(text(lang, "button-admin-find"), "adm:find"),
            ],
            vec![button(text(lang, "button-admin-audit"), "adm:audit")],
        ];
        let body = text_with(
            lang,
            "admin-menu",
            &[("username", staff.username), ("role", staff.role)],
        );
        self.send(chat, &body, Some(keyboard(rows))).await;
    }

    /// Handles `adm:…` buttons.
    pub(crate) async fn admin_action(
        &self,
        user: &User,
        chat: i64,
        lang: Lang,
        action: &str,
        target: Option<&str>,
    ) {
        let telegram_user_id = user_id(user);
        let mut admin = self.admin.clone();
        let result = match (action, target) {
            ("stats", None) => match admin
                .get_stats(pb::GetStatsRequest { telegram_user_id })
                .await
            {
                Ok(stats) => {
                    let stats = stats.into_inner();
                    let money = |rows: &[pb::Revenue]| revenue(lang, rows);
                    let body = text_with(
                        lang,
                        "admin-stats",
                        &[
                            ("customers", stats.customers.to_string()),
                            ("active", stats.active_subscriptions.to_string()),
                            ("trials", stats.trials.to_string()),
                            ("today", money(&stats.today)),
                            ("week", money(&stats.last_7_days)),
                            ("month", money(&stats.last_30_days)),
                        ],
                    );
                    Ok(body)
                }
                Err(status) => Err(status),
            },
            ("find", None) => match admin
                .get_staff(pb::GetStaffRequest { telegram_user_id })
                .await
            {
                Ok(_) => {
                    let _ = self
                        .store
                        .set_number(&crate::dialog_key(user), DIALOG_ADMIN_SEARCH, DIALOG_TTL)
                        .await;
                    Ok(text(lang, "admin-find-prompt"))
                }
                Err(status) => Err(status),
            },
            ("ban", Some(id)) => admin
                .ban_customer(pb::BanCustomerRequest {
                    telegram_user_id,
                    customer_id: id.to_owned(),
                    reason: "banned from the Telegram admin panel".to_owned(),
                })
                .await
                .map(|changed| changed_text(lang, "admin-banned", changed.into_inner())),
            ("unban", Some(id)) => admin
                .unban_customer(pb::UnbanCustomerRequest {
                    telegram_user_id,
                    customer_id: id.to_owned(),
                })
                .await
                .map(|changed| changed_text(lang, "admin-unbanned", changed.into_inner())),
            ("ext", Some(id)) => admin
                .extend_subscription(pb::ExtendSubscriptionRequest {
                    telegram_user_id,
                    customer_id: id.to_owned(),
                    days: EXTEND_DAYS,
                })
                .await
                .map(|extended| {
                    text_with(
                        lang,
                        "admin-extended",
                        &[("until", short_date(&extended.into_inner().expires_at))],
                    )
                }),
            ("reset", Some(id)) => admin
                .reset_traffic(pb::ResetTrafficRequest {
                    telegram_user_id,
                    customer_id: id.to_owned(),
                })
                .await
                .map(|_| text(lang, "admin-traffic-reset")),
            ("audit", None) => admin
                .recent_audit(pb::RecentAuditRequest {
                    telegram_user_id,
                    limit: 10,
                })
                .await
                .map(|audit| {
                    let lines: Vec<String> = audit
                        .into_inner()
                        .entries
                        .iter()
                        .map(|entry| {
                            format!(
                                "{} · {} · {} {}",
                                short_date(&entry.at),
                                entry.action,
                                entry.target_kind,
                                entry.target_id
                            )
                        })
                        .collect();
                    if lines.is_empty() {
                        text(lang, "admin-audit-empty")
                    } else {
                        lines.join("\n")
                    }
                }),
            _ => return self.admin_menu(user, chat, lang).await,
        };
        match result {
            Ok(body) => self.send(chat, &body, None).await,
            Err(status) => self.admin_fail(chat, lang, &status).await,
        }
    }

    /// The customer search of the panel (the text after "Find customer").
    pub(crate) async fn admin_search(&self, user: &User, chat: i64, lang: Lang, query: &str) {
        let _ = self.store.delete(&crate::dialog_key(user)).await;
        let found = self
            .admin
            .clone()
            .find_customers(pb::FindCustomersRequest {
                telegram_user_id: user_id(user),
                query: query.trim().to_owned(),
            })
            .await;
        let customers = match found {
            Ok(found) => found.into_inner().customers,
            Err(status) => return self.admin_fail(chat, lang, &status).await,
        };
        if customers.is_empty() {
            return self.send(chat, &text(lang, "admin-no-results"), None).await;
        }
        for customer in customers {
            let ban = if customer.status == "disabled" {
                button(
                    text(lang, "button-unban"),
                    &format!("adm:unban:{}", customer.id),
                )
            } else {
                button(
                    text(lang, "button-ban"),
                    &format!("adm:ban:{}", customer.id),
                )
            };
            let extend = button(
                text(lang, "button-extend"),
                &format!("adm:ext:{}", customer.id),
            );
            let reset = button(
                text(lang, "button-reset-traffic"),
                &format!("adm:reset:{}", customer.id),
            );
            self.send(
                chat,
                &customer_text(lang, &customer),
                Some(keyboard(vec![vec![ban, extend], vec![reset]])),
            )
            .await;
        }
    }

    async fn admin_fail(&self, chat: i64, lang: Lang, status: &Status) {
        if status.code() == Code::PermissionDenied {
            self.metrics.errors.with_label_values(&["forbidden"]).inc();
            let key = if status.message().contains("not linked") {
                "admin-only"
            } else {
                "admin-denied"
            };
            return self.send(chat, &text(lang, key), None).await;
        }
        self.fail(chat, lang, status).await;
    }
}

fn customer_text(lang: Lang, customer: &pb::AdminCustomer) -> String {
    let dash = || "—".to_owned();
    let subscription = if customer.subscription_expires_at.is_empty() {
        dash()
    } else {
        format!(
            "{} → {}",
            customer.subscription_status,
            short_date(&customer.subscription_expires_at)
        )
    };
    text_with(
        lang,
        "admin-customer",
        &[
            ("username", customer.username.clone()),
            ("status", customer.status.clone()),
            (
                "email",
                Some(customer.email.clone())
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(dash),
            ),
            (
                "telegram",
                Some(customer.telegram_id)
                    .filter(|id| *id != 0)
                    .map_or_else(dash, |id| id.to_string()),
            ),
            ("subscription", subscription),
        ],
    )
}

fn changed_text(lang: Lang, key: &str, changed: pb::AdminCustomerResponse) -> String {
    let username = changed.customer.map(|c| c.username).unwrap_or_default();
    text_with(lang, key, &[("username", username)])
}

/// `12 USD 59.88 · 3 XTR 450` per currency, or “none”.
fn revenue(lang: Lang, rows: &[pb::Revenue]) -> String {
    if rows.is_empty() {
        return text(lang, "admin-no-revenue");
    }
    rows.iter()
        .map(|row| {
            let amount = crate::price_label(&pb::Price {
                amount_minor: row.amount_minor,
                currency: row.currency.clone(),
            });
            format!("{amount} ({})", row.payments)
        })
        .collect::<Vec<_>>()
        .join(" · ")
}
