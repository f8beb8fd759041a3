//! The admin panel in the bot: `/link CODE` ties the Telegram account to a staff account; `/admin` opens the
//! panel. The api checks every action against the staff role, exactly as the admin REST API does.

use cybervpn_rpc::bot::v1 as pb;
use frankenstein::types::User;
use tonic::{Code, Status};

use crate::{
    App, DIALOG_TTL, Lang, button,
    delivery::{Content, broadcast_summary},
    keyboard, short_date, text, text_with, user_id,
};

/// Dialogue state: the next text is a customer search.
pub(crate) const DIALOG_ADMIN_SEARCH: i64 = 2;
/// Dialogue states: the next message is a broadcast to all, active or trial customers.
const DIALOG_BROADCAST: [(i64, pb::BroadcastAudience, &str); 3] = [
    (3, pb::BroadcastAudience::All, "all"),
    (4, pb::BroadcastAudience::Active, "active"),
    (5, pb::BroadcastAudience::Trial, "trial"),
];
/// Dialogue state: the next text is a new promo code (`CODE 20% [uses] [days]` or `CODE +7d [uses] [days]`).
pub(crate) const DIALOG_NEW_PROMO: i64 = 6;
/// Dialogue state: the next text sets a plan's prices (`pro_30 9.99 USD 899 RUB 500 XTR`).
pub(crate) const DIALOG_PLAN_PRICES: i64 = 7;
/// Dialogue state: the next text is a new plan (`pro 30 5 0 9.99 USD 899 RUB`).
pub(crate) const DIALOG_NEW_PLAN: i64 = 8;
/// Dialogue states from this one on: the next text rewords notice number `state - DIALOG_NOTICE`.
pub(crate) const DIALOG_NOTICE: i64 = 100;
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
            vec![
                button(text(lang, "button-admin-audit"), "adm:audit"),
                button(text(lang, "button-admin-broadcast"), "adm:bc"),
            ],
            vec![
                button(text(lang, "button-admin-promos"), "adm:promo"),
                button(text(lang, "button-admin-plans"), "adm:plans"),
                button(text(lang, "button-admin-gateways"), "adm:gw"),
            ],
            vec![button(text(lang, "button-admin-notices"), "adm:tpl")],
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
            ("bc", None) => match admin
                .get_staff(pb::GetStaffRequest { telegram_user_id })
                .await
            {
                Ok(staff)
                    if staff
                        .get_ref()
                        .permissions
                        .iter()
                        .any(|p| p == "send_broadcasts") =>
                {
                    let row = DIALOG_BROADCAST
                        .iter()
                        .map(|(_, _, name)| {
                            button(
                                text(lang, &format!("button-audience-{name}")),
                                &format!("adm:bca:{name}"),
                            )
                        })
                        .collect();
                    return self
                        .send(
                            chat,
                            &text(lang, "admin-broadcast-audience"),
                            Some(keyboard(vec![row])),
                        )
                        .await;
                }
                Ok(_) => Err(Status::permission_denied("send_broadcasts")),
                Err(status) => Err(status),
            },
            ("bca", Some(name)) => match DIALOG_BROADCAST.iter().find(|(_, _, n)| *n == name) {
                Some((state, _, _)) => {
                    let _ = self
                        .store
                        .set_number(&crate::dialog_key(user), *state, DIALOG_TTL)
                        .await;
                    Ok(text(lang, "admin-broadcast-prompt"))
                }
                None => return self.admin_menu(user, chat, lang).await,
            },
            ("bcgo", Some(id)) => match admin
                .start_broadcast(pb::StartBroadcastRequest {
                    telegram_user_id,
                    broadcast_id: id.to_owned(),
                })
                .await
            {
                Ok(started) => {
                    let total = started.into_inner().broadcast.map_or(0, |b| b.total);
                    let body = text_with(
                        lang,
                        "admin-broadcast-started",
                        &[("total", total.to_string())],
                    );
                    let progress = button(
                        text(lang, "button-broadcast-progress"),
                        &format!("adm:bcst:{id}"),
                    );
                    return self
                        .send(chat, &body, Some(keyboard(vec![vec![progress]])))
                        .await;
                }
                Err(status) => Err(status),
            },
            ("bcno", Some(id)) => admin
                .cancel_broadcast(pb::CancelBroadcastRequest {
                    telegram_user_id,
                    broadcast_id: id.to_owned(),
                })
                .await
                .map(|_| text(lang, "admin-broadcast-cancelled")),
            ("bcst", Some(id)) => admin
                .get_broadcast(pb::GetBroadcastRequest {
                    telegram_user_id,
                    broadcast_id: id.to_owned(),
                })
                .await
                .map(|found| match found.into_inner().broadcast {
                    Some(broadcast) => {
                        broadcast_summary(lang, "admin-broadcast-progress", &broadcast)
                    }
                    None => text(lang, "admin-no-results"),
                }),
            ("promo", None) => match admin
                .list_promo_codes(pb::ListPromoCodesRequest {
                    telegram_user_id,
                    limit: 10,
                })
                .await
            {
                Ok(list) => {
                    let codes = list.into_inner().promo_codes;
                    let mut rows: Vec<_> = codes
                        .iter()
                        .filter(|code| code.is_active)
                        .map(|code| {
                            vec![button(
                                text_with(lang, "button-promo-off", &[("code", code.code.clone())]),
                                &format!("adm:poff:{}", code.id),
                            )]
                        })
                        .collect();
                    rows.push(vec![button(text(lang, "button-promo-new"), "adm:pnew")]);
                    let lines: Vec<String> =
                        codes.iter().map(|code| promo_line(lang, code)).collect();
                    let body = if lines.is_empty() {
                        text(lang, "admin-promo-empty")
                    } else {
                        lines.join("\n")
                    };
                    return self.send(chat, &body, Some(keyboard(rows))).await;
                }
                Err(status) => Err(status),
            },
            ("pnew", None) => {
                let _ = self
                    .store
                    .set_number(&crate::dialog_key(user), DIALOG_NEW_PROMO, DIALOG_TTL)
                    .await;
                Ok(text(lang, "admin-promo-prompt"))
            }
            ("poff", Some(id)) => admin
                .deactivate_promo_code(pb::DeactivatePromoCodeRequest {
                    telegram_user_id,
                    promo_code_id: id.to_owned(),
                })
                .await
                .map(|_| text(lang, "admin-promo-off")),
            ("plans", None) => match self.all_plans(telegram_user_id).await {
                Ok(plans) => {
                    let mut rows: Vec<Vec<_>> = plans
                        .chunks(4)
                        .map(|chunk| {
                            chunk
                                .iter()
                                .filter_map(|plan| plan.plan.as_ref())
                                .map(|plan| {
                                    button(plan.code.clone(), &format!("adm:plan:{}", plan.id))
                                })
                                .collect()
                        })
                        .collect();
                    rows.push(vec![
                        button(text(lang, "button-plan-prices"), "adm:plpr"),
                        button(text(lang, "button-plan-new"), "adm:plnew"),
                    ]);
                    let lines: Vec<String> =
                        plans.iter().map(|plan| plan_line(lang, plan)).collect();
                    return self
                        .send(chat, &lines.join("\n"), Some(keyboard(rows)))
                        .await;
                }
                Err(status) => Err(status),
            },
            ("plan", Some(id)) => match self.all_plans(telegram_user_id).await {
                Ok(plans) => {
                    let Some(plan) = plans
                        .iter()
                        .find(|p| p.plan.as_ref().is_some_and(|p| p.id == id))
                    else {
                        return self.send(chat, &text(lang, "admin-no-results"), None).await;
                    };
                    let toggle = if plan.is_active {
                        button(text(lang, "button-plan-retire"), &format!("adm:ploff:{id}"))
                    } else {
                        button(text(lang, "button-plan-sell"), &format!("adm:plon:{id}"))
                    };
                    return self
                        .send(
                            chat,
                            &plan_line(lang, plan),
                            Some(keyboard(vec![vec![toggle]])),
                        )
                        .await;
                }
                Err(status) => Err(status),
            },
            ("plon" | "ploff", Some(id)) => admin
                .update_plan(pb::UpdatePlanRequest {
                    telegram_user_id,
                    plan_id: id.to_owned(),
                    prices: Vec::new(),
                    is_active: Some(action == "plon"),
                })
                .await
                .map(|updated| {
                    updated
                        .into_inner()
                        .plan
                        .map(|plan| plan_line(lang, &plan))
                        .unwrap_or_default()
                }),
            ("plpr" | "plnew", None) => {
                let (state, prompt) = if action == "plpr" {
                    (DIALOG_PLAN_PRICES, "admin-plan-prices-prompt")
                } else {
                    (DIALOG_NEW_PLAN, "admin-plan-new-prompt")
                };
                let _ = self
                    .store
                    .set_number(&crate::dialog_key(user), state, DIALOG_TTL)
                    .await;
                Ok(text(lang, prompt))
            }
            ("gw", None) => match admin
                .list_gateways(pb::ListGatewaysRequest { telegram_user_id })
                .await
            {
                Ok(list) => {
                    let gateways = list.into_inner().gateways;
                    let rows = gateways
                        .iter()
                        .filter(|gateway| gateway.configured)
                        .map(|gateway| {
                            let (key, verb) = if gateway.enabled {
                                ("button-gateway-off", "gwoff")
                            } else {
                                ("button-gateway-on", "gwon")
                            };
                            vec![button(
                                text_with(lang, key, &[("gateway", gateway.provider.clone())]),
                                &format!("adm:{verb}:{}", gateway.provider),
                            )]
                        })
                        .collect();
                    let lines: Vec<String> = gateways
                        .iter()
                        .map(|gateway| gateway_line(lang, gateway))
                        .collect();
                    return self
                        .send(chat, &lines.join("\n"), Some(keyboard(rows)))
                        .await;
                }
                Err(status) => Err(status),
            },
            ("gwon" | "gwoff", Some(provider)) => admin
                .set_gateway_enabled(pb::SetGatewayEnabledRequest {
                    telegram_user_id,
                    provider: provider.to_owned(),
                    enabled: action == "gwon",
                })
                .await
                .map(|set| {
                    set.into_inner()
                        .gateway
                        .map(|gateway| gateway_line(lang, &gateway))
                        .unwrap_or_default()
                }),
            ("tpl", None) => match self.notices(telegram_user_id).await {
                Ok(notices) => {
                    let rows: Vec<Vec<_>> = notices
                        .chunks(2)
                        .enumerate()
                        .map(|(row, pair)| {
                            pair.iter()
                                .enumerate()
                                .map(|(col, notice)| {
                                    let mark = if notice.is_default { "" } else { " ✎" };
                                    button(
                                        format!("{} · {}{mark}", notice.kind, notice.language),
                                        &format!("adm:tpl:{}", row * 2 + col),
                                    )
                                })
                                .collect()
                        })
                        .collect();
                    return self
                        .send(chat, &text(lang, "admin-notices"), Some(keyboard(rows)))
                        .await;
                }
                Err(status) => Err(status),
            },
            ("tpl", Some(index)) => {
                let notice = match index.parse::<usize>() {
                    Ok(index) => self
                        .notices(telegram_user_id)
                        .await
                        .map(|notices| notices.into_iter().nth(index).map(|n| (index, n))),
                    Err(_) => Ok(None),
                };
                match notice {
                    Ok(Some((index, notice))) => {
                        let state = DIALOG_NOTICE + i64::try_from(index).unwrap_or(0);
                        let _ = self
                            .store
                            .set_number(&crate::dialog_key(user), state, DIALOG_TTL)
                            .await;
                        Ok(text_with(
                            lang,
                            "admin-notice-prompt",
                            &[
                                ("kind", notice.kind),
                                ("language", notice.language),
                                ("text", notice.text),
                                ("placeholders", notice.placeholders.join(", ")),
                            ],
                        ))
                    }
                    Ok(None) => return self.admin_menu(user, chat, lang).await,
                    Err(status) => Err(status),
                }
            }
            _ => return self.admin_menu(user, chat, lang).await,
        };
        match result {
            Ok(body) => self.send(chat, &body, None).await,
            Err(status) => self.admin_fail(chat, lang, &status).await,
        }
    }

    /// The broadcast audience chosen in dialogue state `state`, if it is one.
    pub(crate) fn broadcast_audience(state: i64) -> Option<pb::BroadcastAudience> {
        DIALOG_BROADCAST
            .iter()
            .find(|(s, _, _)| *s == state)
            .map(|(_, audience, _)| *audience)
    }

    /// A broadcast written after choosing its audience: stored as a draft, shown back, and confirmed by a
    /// button.
    pub(crate) async fn broadcast_draft(
        &self,
        user: &User,
        chat: i64,
        lang: Lang,
        audience: pb::BroadcastAudience,
        body: &str,
        photo: Option<&str>,
    ) {
        let _ = self.store.delete(&crate::dialog_key(user)).await;
        let created = self
            .admin
            .clone()
            .create_broadcast(pb::CreateBroadcastRequest {
                telegram_user_id: user_id(user),
                audience: audience.into(),
                text: body.to_owned(),
                photo_file_id: photo.unwrap_or_default().to_owned(),
                report_chat_id: chat,
            })
            .await;
        let draft = match created {
            Ok(created) => created.into_inner().broadcast.unwrap_or_default(),
            Err(status) if status.code() == Code::InvalidArgument => {
                return self
                    .send(chat, &text(lang, "admin-broadcast-invalid"), None)
                    .await;
            }
            Err(status) => return self.admin_fail(chat, lang, &status).await,
        };
        // The preview is the message exactly as customers will get it.
        let _ = self
            .deliver(
                chat,
                &Content {
                    text: body,
                    photo,
                    document: None,
                },
            )
            .await;
        let buttons = vec![vec![
            button(
                text(lang, "button-broadcast-send"),
                &format!("adm:bcgo:{}", draft.id),
            ),
            button(
                text(lang, "button-broadcast-cancel"),
                &format!("adm:bcno:{}", draft.id),
            ),
        ]];
        let question = text_with(
            lang,
            "admin-broadcast-preview",
            &[("total", draft.total.to_string())],
        );
        self.send(chat, &question, Some(keyboard(buttons))).await;
    }

    /// A new promo code typed after "New code": `CODE 20% [uses] [days]` or `CODE +7d [uses] [days]`.
    pub(crate) async fn admin_new_promo(&self, user: &User, chat: i64, lang: Lang, line: &str) {
        let _ = self.store.delete(&crate::dialog_key(user)).await;
        let Some(request) = parse_promo(user_id(user), line) else {
            return self
                .send(chat, &text(lang, "admin-promo-invalid"), None)
                .await;
        };
        match self.admin.clone().create_promo_code(request).await {
            Ok(created) => {
                let code = created.into_inner().promo_code.unwrap_or_default();
                let body = text_with(
                    lang,
                    "admin-promo-created",
                    &[("line", promo_line(lang, &code))],
                );
                self.send(chat, &body, None).await;
            }
            Err(status) if matches!(status.code(), Code::InvalidArgument | Code::AlreadyExists) => {
                let body = text_with(
                    lang,
                    "admin-promo-refused",
                    &[("reason", status.message().to_owned())],
                );
                self.send(chat, &body, None).await;
            }
            Err(status) => self.admin_fail(chat, lang, &status).await,
        }
    }

    async fn notices(&self, telegram_user_id: i64) -> Result<Vec<pb::NoticeTemplate>, Status> {
        Ok(self
            .admin
            .clone()
            .list_notice_templates(pb::ListNoticeTemplatesRequest { telegram_user_id })
            .await?
            .into_inner()
            .templates)
    }

    /// The new wording of notice number `index` (`default` restores the built-in text).
    pub(crate) async fn admin_notice_text(
        &self,
        user: &User,
        chat: i64,
        lang: Lang,
        index: i64,
        body: &str,
    ) {
        let _ = self.store.delete(&crate::dialog_key(user)).await;
        let telegram_user_id = user_id(user);
        let notice = match self.notices(telegram_user_id).await {
            Ok(notices) => usize::try_from(index)
                .ok()
                .and_then(|index| notices.into_iter().nth(index)),
            Err(status) => return self.admin_fail(chat, lang, &status).await,
        };
        let Some(notice) = notice else {
            return self.admin_menu(user, chat, lang).await;
        };
        let text_to_set = if body.trim().eq_ignore_ascii_case("default") {
            String::new()
        } else {
            body.to_owned()
        };
        let saved = self
            .admin
            .clone()
            .set_notice_template(pb::SetNoticeTemplateRequest {
                telegram_user_id,
                kind: notice.kind,
                language: notice.language,
                text: text_to_set,
            })
            .await;
        match saved {
            Ok(saved) => {
                let saved = saved.into_inner().template.unwrap_or_default();
                let body = text_with(lang, "admin-notice-saved", &[("text", saved.text)]);
                self.send(chat, &body, None).await;
            }
            Err(status) if status.code() == Code::InvalidArgument => {
                let body = text_with(
                    lang,
                    "admin-notice-refused",
                    &[("reason", status.message().to_owned())],
                );
                self.send(chat, &body, None).await;
            }
            Err(status) => self.admin_fail(chat, lang, &status).await,
        }
    }

    async fn all_plans(&self, telegram_user_id: i64) -> Result<Vec<pb::AdminPlan>, Status> {
        Ok(self
            .admin
            .clone()
            .list_all_plans(pb::ListAllPlansRequest { telegram_user_id })
            .await?
            .into_inner()
            .plans)
    }

    /// A plan line typed after "Set prices" or "New plan".
    pub(crate) async fn admin_plan_text(
        &self,
        user: &User,
        chat: i64,
        lang: Lang,
        state: i64,
        line: &str,
    ) {
        let _ = self.store.delete(&crate::dialog_key(user)).await;
        let telegram_user_id = user_id(user);
        let mut words = line.split_whitespace();
        let result = if state == DIALOG_PLAN_PRICES {
            let code = words.next().unwrap_or_default();
            let Some(prices) = parse_prices(words) else {
                return self
                    .send(chat, &text(lang, "admin-plan-invalid"), None)
                    .await;
            };
            let plan = match self.all_plans(telegram_user_id).await {
                Ok(plans) => plans
                    .into_iter()
                    .filter_map(|p| p.plan)
                    .find(|p| p.code.eq_ignore_ascii_case(code)),
                Err(status) => return self.admin_fail(chat, lang, &status).await,
            };
            let Some(plan) = plan else {
                return self.send(chat, &text(lang, "admin-no-results"), None).await;
            };
            self.admin
                .clone()
                .update_plan(pb::UpdatePlanRequest {
                    telegram_user_id,
                    plan_id: plan.id,
                    prices,
                    is_active: None,
                })
                .await
                .map(|updated| updated.into_inner().plan)
        } else {
            let fields: Vec<&str> = words.by_ref().take(4).collect();
            let (Some(prices), [tier, days, devices, traffic_gb]) =
                (parse_prices(words), fields.as_slice())
            else {
                return self
                    .send(chat, &text(lang, "admin-plan-invalid"), None)
                    .await;
            };
            let (Ok(days), Ok(devices), Ok(traffic_gb)) =
                (days.parse(), devices.parse(), traffic_gb.parse::<u64>())
            else {
                return self
                    .send(chat, &text(lang, "admin-plan-invalid"), None)
                    .await;
            };
            self.admin
                .clone()
                .create_plan(pb::CreatePlanRequest {
                    telegram_user_id,
                    tier: (*tier).to_owned(),
                    duration_days: days,
                    prices,
                    traffic_limit_bytes: traffic_gb.saturating_mul(1 << 30),
                    device_limit: devices,
                })
                .await
                .map(|created| created.into_inner().plan)
        };
        match result {
            Ok(plan) => {
                let body = plan.map(|plan| plan_line(lang, &plan)).unwrap_or_default();
                self.send(chat, &body, None).await;
            }
            Err(status) if matches!(status.code(), Code::InvalidArgument | Code::AlreadyExists) => {
                let body = text_with(
                    lang,
                    "admin-plan-refused",
                    &[("reason", status.message().to_owned())],
                );
                self.send(chat, &body, None).await;
            }
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
            (
                "loyalty",
                text(lang, &format!("loyalty-level-{}", customer.loyalty_level)),
            ),
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

/// `CODE 20% [uses] [days]` or `CODE +7d [uses] [days]` as a create request; `None` when it does not parse.
fn parse_promo(telegram_user_id: i64, line: &str) -> Option<pb::CreatePromoCodeRequest> {
    let mut words = line.split_whitespace();
    let code = words.next()?.to_owned();
    let benefit = words.next()?;
    let (percent_off, bonus_days) = if let Some(percent) = benefit.strip_suffix('%') {
        (percent.parse().ok()?, 0)
    } else {
        let days = benefit.strip_prefix('+')?.strip_suffix('d')?;
        (0, days.parse().ok()?)
    };
    let max_uses = words.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    let valid_days = words.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    if words.next().is_some() {
        return None;
    }
    Some(pb::CreatePromoCodeRequest {
        telegram_user_id,
        code,
        percent_off,
        bonus_days,
        max_uses,
        valid_days,
    })
}

/// `9.99 USD 899 RUB 500 XTR` as prices in minor units (2 decimals, none for Stars); `None` if malformed.
fn parse_prices<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<Vec<pb::Price>> {
    let mut prices = Vec::new();
    while let Some(amount) = words.next() {
        let currency = words.next()?.to_ascii_uppercase();
        let digits = if currency == "XTR" { 0 } else { 2 };
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        if fraction.len() > digits || whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let scale = 10_i64.pow(u32::try_from(digits).ok()?);
        let fraction_minor: i64 = format!("{fraction:0<digits$}").parse().unwrap_or(0);
        let amount_minor = whole
            .parse::<i64>()
            .ok()?
            .checked_mul(scale)?
            .checked_add(fraction_minor)?;
        prices.push(pb::Price {
            amount_minor,
            currency,
        });
    }
    (!prices.is_empty()).then_some(prices)
}

/// One plan in a line: code, prices, state.
fn plan_line(lang: Lang, plan: &pb::AdminPlan) -> String {
    let Some(details) = &plan.plan else {
        return String::new();
    };
    let prices: Vec<String> = details.prices.iter().map(crate::price_label).collect();
    let state = text(
        lang,
        if plan.is_active {
            "admin-plan-on-sale"
        } else {
            "admin-plan-retired"
        },
    );
    format!("{} · {} · {state}", details.code, prices.join(", "))
}

/// One gateway in a line: name and state.
fn gateway_line(lang: Lang, gateway: &pb::Gateway) -> String {
    let state = match (gateway.configured, gateway.enabled) {
        (false, _) => "admin-gateway-unconfigured",
        (true, true) => "admin-gateway-on",
        (true, false) => "admin-gateway-off",
    };
    format!("{} · {}", gateway.provider, text(lang, state))
}

/// One promo code in a line: code, benefit, uses, state.
fn promo_line(lang: Lang, code: &pb::PromoCode) -> String {
    let benefit = crate::benefit_label(&code.benefit);
    let uses = if code.max_uses == 0 {
        format!("{}/∞", code.used_count)
    } else {
        format!("{}/{}", code.used_count, code.max_uses)
    };
    let state = text(
        lang,
        if code.is_active {
            "admin-promo-on"
        } else {
            "admin-promo-state-off"
        },
    );
    let until = if code.valid_until.is_empty() {
        String::new()
    } else {
        format!(" · → {}", short_date(&code.valid_until))
    };
    format!("{} · {benefit} · {uses} · {state}{until}", code.code)
}

#[cfg(test)]
mod tests {
    use super::parse_promo;

    #[test]
    fn prices_parse_in_minor_units() {
        let prices =
            super::parse_prices("9.99 usd 899 RUB 500 XTR 1.5 USD".split_whitespace()).unwrap();
        let minor: Vec<(i64, &str)> = prices
            .iter()
            .map(|p| (p.amount_minor, p.currency.as_str()))
            .collect();
        assert_eq!(
            minor,
            [(999, "USD"), (89_900, "RUB"), (500, "XTR"), (150, "USD")]
        );
        for bad in ["", "9.99", "9.999 USD", "1.5 XTR", "-1 USD", "abc USD"] {
            assert!(
                super::parse_prices(bad.split_whitespace()).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn promo_lines_parse_into_one_benefit() {
        let percent = parse_promo(1, "SPRING 20% 100 30").unwrap();
        assert_eq!(
            (
                percent.code.as_str(),
                percent.percent_off,
                percent.bonus_days,
                percent.max_uses,
                percent.valid_days
            ),
            ("SPRING", 20, 0, 100, 30)
        );
        let days = parse_promo(1, "gift +7d").unwrap();
        assert_eq!(
            (days.percent_off, days.bonus_days, days.max_uses),
            (0, 7, 0)
        );
        for bad in [
            "",
            "CODE",
            "CODE 20",
            "CODE +7",
            "CODE 20% many",
            "CODE 20% 1 2 3",
            "CODE -5d",
        ] {
            assert!(parse_promo(1, bad).is_none(), "{bad:?}");
        }
    }
}
