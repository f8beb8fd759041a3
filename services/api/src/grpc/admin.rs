//! `cybervpn.bot.v1.AdminService`: the bot's admin panel, for Telegram users linked to staff accounts, each
//! call checked against the staff role's permissions like the admin REST API and audited the same way.

use chrono::{Duration, SubsecRound, Utc};
use cybervpn_db::{CustomerRecord, CustomerSearch, Dashboard, Revenue, StaffLinks};
use cybervpn_domain::{CustomerId, Permission, StaffAccount, TelegramId};
use cybervpn_rpc::bot::v1::{self as pb, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use super::{parse_uuid, status};
use crate::{
    auth::authorize_staff,
    routes::{
        audit::RequestTag,
        operations,
        users::{self, StatusChange},
    },
    state::AppState,
};

/// How long a Telegram link code stays valid.
pub(crate) const LINK_CODE_TTL: Duration = Duration::minutes(10);

/// The admin panel service.
pub(crate) struct Admin {
    pub(crate) state: actix_web::web::Data<AppState>,
}

/// SHA-256 (hex) of a link code as typed: only hashes are stored.
pub(crate) fn link_code_hash(code: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(
        code.trim().to_ascii_uppercase().as_bytes(),
    ))
}

impl Admin {
    /// The active staff account linked to this Telegram user, if it holds `permission`.
    pub(super) async fn staff(
        &self,
        telegram_user_id: i64,
        permission: Option<Permission>,
    ) -> Result<StaffAccount, Status> {
        let telegram = TelegramId::new(telegram_user_id).map_err(status)?;
        let staff = StaffLinks::on(self.state.db.conn())
            .staff_of(telegram)
            .await
            .map_err(status)?
            .ok_or_else(|| {
                Status::permission_denied("this Telegram account is not linked to staff")
            })?;
        Ok(authorize_staff(&self.state, staff, permission).await?)
    }

    async fn customer_view(&self, record: &CustomerRecord) -> Result<pb::AdminCustomer, Status> {
        let customer = &record.customer;
        let subscription = self
            .state
            .db
            .subscriptions()
            .current_for(customer.id)
            .await
            .map_err(status)?;
        let loyalty = self
            .state
            .db
            .loyalty()
            .account(customer.id)
            .await
            .map_err(status)?;
        Ok(pb::AdminCustomer {
            loyalty_level: loyalty
                .tenure
                .level_at(chrono::Utc::now())
                .as_str()
                .to_owned(),
            id: customer.id.as_uuid().to_string(),
            username: customer.username.as_str().to_owned(),
            email: customer
                .email
                .as_ref()
                .map(|email| email.as_str().to_owned())
                .unwrap_or_default(),
            telegram_id: customer.telegram_id.map_or(0, TelegramId::get),
            status: customer.status.as_str().to_owned(),
            subscription_expires_at: subscription
                .as_ref()
                .map(|s| s.expires_at.to_rfc3339())
                .unwrap_or_default(),
            subscription_status: subscription
                .as_ref()
                .map(|s| s.status.as_str().to_owned())
                .unwrap_or_default(),
        })
    }

    async fn after_change(
        &self,
        id: CustomerId,
    ) -> Result<Response<pb::AdminCustomerResponse>, Status> {
        let record = self.state.db.customers().record(id).await.map_err(status)?;
        Ok(Response::new(pb::AdminCustomerResponse {
            customer: Some(self.customer_view(&record).await?),
        }))
    }
}

fn revenue(rows: Vec<Revenue>) -> Vec<pb::Revenue> {
    rows.into_iter()
        .map(|row| pb::Revenue {
            currency: row.currency,
            payments: row.payments,
            amount_minor: row.amount_minor,
        })
        .collect()
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn link_staff(
        &self,
        request: Request<pb::LinkStaffRequest>,
    ) -> Result<Response<pb::LinkStaffResponse>, Status> {
        let request = request.into_inner();
        let telegram = TelegramId::new(request.telegram_user_id).map_err(status)?;
        let now = Utc::now().trunc_subsecs(6);
        let links = StaffLinks::on(self.state.db.conn());
        let staff = links
            .redeem_code(&link_code_hash(&request.code), now)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::permission_denied("the code is wrong, used or expired"))?;
        let account = authorize_staff(&self.state, staff, None).await?;
        links.link(staff, telegram, now).await.map_err(status)?;
        tracing::info!(staff = %staff.as_uuid(), "staff account linked to a Telegram user");
        Ok(Response::new(pb::LinkStaffResponse {
            staff_id: staff.as_uuid().to_string(),
            role: account.role.as_str().to_owned(),
        }))
    }

    async fn get_staff(
        &self,
        request: Request<pb::GetStaffRequest>,
    ) -> Result<Response<pb::GetStaffResponse>, Status> {
        let staff = self
            .staff(request.into_inner().telegram_user_id, None)
            .await?;
        Ok(Response::new(pb::GetStaffResponse {
            staff_id: staff.id.as_uuid().to_string(),
            username: staff.username.as_str().to_owned(),
            role: staff.role.as_str().to_owned(),
            permissions: staff
                .role
                .permissions()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
        }))
    }

    async fn get_stats(
        &self,
        request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        self.staff(
            request.into_inner().telegram_user_id,
            Some(Permission::ViewPayments),
        )
        .await?;
        let dashboard = Dashboard::on(self.state.db.conn());
        let now = Utc::now();
        let today = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        Ok(Response::new(pb::GetStatsResponse {
            customers: dashboard.customers().await.map_err(status)?,
            active_subscriptions: dashboard.active_subscriptions(now).await.map_err(status)?,
            trials: dashboard.trials().await.map_err(status)?,
            today: revenue(dashboard.revenue_since(today).await.map_err(status)?),
            last_7_days: revenue(
                dashboard
                    .revenue_since(now - Duration::days(7))
                    .await
                    .map_err(status)?,
            ),
            last_30_days: revenue(
                dashboard
                    .revenue_since(now - Duration::days(30))
                    .await
                    .map_err(status)?,
            ),
        }))
    }

    async fn find_customers(
        &self,
        request: Request<pb::FindCustomersRequest>,
    ) -> Result<Response<pb::FindCustomersResponse>, Status> {
        let request = request.into_inner();
        self.staff(request.telegram_user_id, Some(Permission::ViewCustomers))
            .await?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(Status::invalid_argument("query must not be empty"));
        }
        let search = CustomerSearch {
            text: Some(query.to_owned()),
            ..CustomerSearch::default()
        };
        let records = self
            .state
            .db
            .customers()
            .search(&search, None, 10)
            .await
            .map_err(status)?;
        let mut customers = Vec::with_capacity(records.len());
        for record in &records {
            customers.push(self.customer_view(record).await?);
        }
        Ok(Response::new(pb::FindCustomersResponse { customers }))
    }

    async fn ban_customer(
        &self,
        request: Request<pb::BanCustomerRequest>,
    ) -> Result<Response<pb::AdminCustomerResponse>, Status> {
        let request = request.into_inner();
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::BanCustomers))
            .await?;
        let id = CustomerId::from_uuid(parse_uuid("customer_id", &request.customer_id)?);
        let reason = Some(request.reason.trim().chars().take(500).collect::<String>())
            .filter(|reason| !reason.is_empty());
        users::set_banned(
            &self.state,
            &staff,
            &RequestTag::grpc(),
            id,
            StatusChange::ban(reason),
        )
        .await?;
        self.after_change(id).await
    }

    async fn unban_customer(
        &self,
        request: Request<pb::UnbanCustomerRequest>,
    ) -> Result<Response<pb::AdminCustomerResponse>, Status> {
        let request = request.into_inner();
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::BanCustomers))
            .await?;
        let id = CustomerId::from_uuid(parse_uuid("customer_id", &request.customer_id)?);
        users::set_banned(
            &self.state,
            &staff,
            &RequestTag::grpc(),
            id,
            StatusChange::unban(),
        )
        .await?;
        self.after_change(id).await
    }

    async fn extend_subscription(
        &self,
        request: Request<pb::ExtendSubscriptionRequest>,
    ) -> Result<Response<pb::ExtendSubscriptionResponse>, Status> {
        let request = request.into_inner();
        let staff = self
            .staff(
                request.telegram_user_id,
                Some(Permission::ManageSubscriptions),
            )
            .await?;
        let id = CustomerId::from_uuid(parse_uuid("customer_id", &request.customer_id)?);
        let view =
            operations::extend(&self.state, &staff, &RequestTag::grpc(), id, request.days).await?;
        Ok(Response::new(pb::ExtendSubscriptionResponse {
            expires_at: view.expires_at().to_rfc3339(),
        }))
    }

    async fn reset_traffic(
        &self,
        request: Request<pb::ResetTrafficRequest>,
    ) -> Result<Response<pb::ResetTrafficResponse>, Status> {
        let request = request.into_inner();
        let staff = self
            .staff(
                request.telegram_user_id,
                Some(Permission::ManageSubscriptions),
            )
            .await?;
        let id = CustomerId::from_uuid(parse_uuid("customer_id", &request.customer_id)?);
        let accepted = operations::queue_panel_action(
            &self.state,
            &staff,
            &RequestTag::grpc(),
            id,
            cybervpn_jobs::catalog::PanelAction::ResetTraffic,
        )
        .await?;
        Ok(Response::new(pb::ResetTrafficResponse {
            request_id: accepted.request_id().to_string(),
        }))
    }

    async fn recent_audit(
        &self,
        request: Request<pb::RecentAuditRequest>,
    ) -> Result<Response<pb::RecentAuditResponse>, Status> {
        let request = request.into_inner();
        self.staff(request.telegram_user_id, Some(Permission::ViewAuditLog))
            .await?;
        let limit = match request.limit {
            0 => 10,
            n => u64::from(n.min(20)),
        };
        let entries = self
            .state
            .db
            .audit()
            .list(None, limit)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RecentAuditResponse {
            entries: entries
                .into_iter()
                .map(|entry| pb::AuditEntry {
                    at: entry.created_at.to_rfc3339(),
                    staff_id: entry.staff_id.as_uuid().to_string(),
                    action: entry.action,
                    target_kind: entry.target_kind,
                    target_id: entry.target_id,
                })
                .collect(),
        }))
    }

    async fn create_broadcast(
        &self,
        request: Request<pb::CreateBroadcastRequest>,
    ) -> Result<Response<pb::CreateBroadcastResponse>, Status> {
        Ok(Response::new(
            Admin::create_broadcast(self, request.into_inner()).await?,
        ))
    }

    async fn start_broadcast(
        &self,
        request: Request<pb::StartBroadcastRequest>,
    ) -> Result<Response<pb::StartBroadcastResponse>, Status> {
        Ok(Response::new(
            Admin::start_broadcast(self, request.into_inner()).await?,
        ))
    }

    async fn cancel_broadcast(
        &self,
        request: Request<pb::CancelBroadcastRequest>,
    ) -> Result<Response<pb::CancelBroadcastResponse>, Status> {
        Ok(Response::new(
            Admin::cancel_broadcast(self, request.into_inner()).await?,
        ))
    }

    async fn get_broadcast(
        &self,
        request: Request<pb::GetBroadcastRequest>,
    ) -> Result<Response<pb::GetBroadcastResponse>, Status> {
        Ok(Response::new(
            Admin::get_broadcast(self, request.into_inner()).await?,
        ))
    }

    async fn list_promo_codes(
        &self,
        request: Request<pb::ListPromoCodesRequest>,
    ) -> Result<Response<pb::ListPromoCodesResponse>, Status> {
        Ok(Response::new(
            Admin::list_promo_codes(self, request.into_inner()).await?,
        ))
    }

    async fn create_promo_code(
        &self,
        request: Request<pb::CreatePromoCodeRequest>,
    ) -> Result<Response<pb::CreatePromoCodeResponse>, Status> {
        Ok(Response::new(
            Admin::create_promo_code(self, request.into_inner()).await?,
        ))
    }

    async fn deactivate_promo_code(
        &self,
        request: Request<pb::DeactivatePromoCodeRequest>,
    ) -> Result<Response<pb::DeactivatePromoCodeResponse>, Status> {
        Ok(Response::new(
            Admin::deactivate_promo_code(self, request.into_inner()).await?,
        ))
    }

    async fn list_all_plans(
        &self,
        request: Request<pb::ListAllPlansRequest>,
    ) -> Result<Response<pb::ListAllPlansResponse>, Status> {
        Ok(Response::new(
            Admin::list_all_plans(self, request.into_inner()).await?,
        ))
    }

    async fn create_plan(
        &self,
        request: Request<pb::CreatePlanRequest>,
    ) -> Result<Response<pb::CreatePlanResponse>, Status> {
        Ok(Response::new(
            Admin::create_plan(self, request.into_inner()).await?,
        ))
    }

    async fn update_plan(
        &self,
        request: Request<pb::UpdatePlanRequest>,
    ) -> Result<Response<pb::UpdatePlanResponse>, Status> {
        Ok(Response::new(
            Admin::update_plan(self, request.into_inner()).await?,
        ))
    }

    async fn list_gateways(
        &self,
        request: Request<pb::ListGatewaysRequest>,
    ) -> Result<Response<pb::ListGatewaysResponse>, Status> {
        Ok(Response::new(
            Admin::list_gateways(self, request.into_inner()).await?,
        ))
    }

    async fn set_gateway_enabled(
        &self,
        request: Request<pb::SetGatewayEnabledRequest>,
    ) -> Result<Response<pb::SetGatewayEnabledResponse>, Status> {
        Ok(Response::new(
            Admin::set_gateway_enabled(self, request.into_inner()).await?,
        ))
    }

    async fn list_notice_templates(
        &self,
        request: Request<pb::ListNoticeTemplatesRequest>,
    ) -> Result<Response<pb::ListNoticeTemplatesResponse>, Status> {
        Ok(Response::new(
            Admin::list_notice_templates(self, request.into_inner()).await?,
        ))
    }

    async fn set_notice_template(
        &self,
        request: Request<pb::SetNoticeTemplateRequest>,
    ) -> Result<Response<pb::SetNoticeTemplateResponse>, Status> {
        Ok(Response::new(
            Admin::set_notice_template(self, request.into_inner()).await?,
        ))
    }
}
