//! Plans and payment gateways in the bot's admin panel (`AdminService`), with the same checks and audit
//! entries as the admin REST API.

use chrono::{SubsecRound, Utc};
use cybervpn_db::GatewaySwitches;
use cybervpn_domain::{Permission, Plan, PlanId};
use cybervpn_rpc::bot::v1 as pb;
use tonic::Status;

use super::{admin::Admin, parse_provider, parse_uuid, plan_proto, status};
use crate::routes::{
    audit::{self, Change, RequestTag},
    plans_admin::{self, CreatePlanRequest, PriceInput, UpdatePlanRequest},
};

fn admin_plan(plan: &Plan) -> pb::AdminPlan {
    pb::AdminPlan {
        plan: Some(plan_proto(plan)),
        is_active: plan.is_active,
    }
}

fn prices(prices: Vec<pb::Price>) -> Vec<PriceInput> {
    prices
        .into_iter()
        .map(|price| PriceInput {
            currency: price.currency,
            amount_minor: price.amount_minor,
        })
        .collect()
}

impl Admin {
    pub(super) async fn list_all_plans(
        &self,
        request: pb::ListAllPlansRequest,
    ) -> Result<pb::ListAllPlansResponse, Status> {
        self.staff(request.telegram_user_id, Some(Permission::ViewPlans))
            .await?;
        let plans = self.state.db.plans().list_all().await.map_err(status)?;
        Ok(pb::ListAllPlansResponse {
            plans: plans.iter().map(admin_plan).collect(),
        })
    }

    pub(super) async fn create_plan(
        &self,
        request: pb::CreatePlanRequest,
    ) -> Result<pb::CreatePlanResponse, Status> {
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::ManagePlans))
            .await?;
        let body = CreatePlanRequest {
            tier: request.tier,
            duration_days: i64::from(request.duration_days),
            prices: prices(request.prices),
            traffic_limit_bytes: match request.traffic_limit_bytes {
                0 => None,
                bytes => Some(i64::try_from(bytes).unwrap_or(i64::MAX)),
            },
            device_limit: i64::from(request.device_limit),
            sort_order: None,
            is_active: Some(true),
        };
        let plan = plans_admin::create(&self.state, &staff, &RequestTag::grpc(), body).await?;
        Ok(pb::CreatePlanResponse {
            plan: Some(admin_plan(&plan)),
        })
    }

    pub(super) async fn update_plan(
        &self,
        request: pb::UpdatePlanRequest,
    ) -> Result<pb::UpdatePlanResponse, Status> {
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::ManagePlans))
            .await?;
        let id = PlanId::from_uuid(parse_uuid("plan_id", &request.plan_id)?);
        let tag = RequestTag::grpc();
        if request.is_active == Some(false) && request.prices.is_empty() {
            plans_admin::deactivate(&self.state, &staff, &tag, id).await?;
        } else {
            let body = UpdatePlanRequest {
                prices: Some(prices(request.prices)).filter(|p| !p.is_empty()),
                traffic_limit_bytes: None,
                device_limit: None,
                is_active: request.is_active,
                sort_order: None,
            };
            plans_admin::update(&self.state, &staff, &tag, id, body).await?;
        }
        let plan = self.state.db.plans().get(id).await.map_err(status)?;
        Ok(pb::UpdatePlanResponse {
            plan: Some(admin_plan(&plan)),
        })
    }

    async fn gateway(
        &self,
        provider: cybervpn_domain::PaymentProvider,
    ) -> Result<pb::Gateway, Status> {
        Ok(pb::Gateway {
            provider: provider.as_str().to_owned(),
            configured: self.state.gateways.configured(provider),
            enabled: GatewaySwitches::on(self.state.db.conn())
                .is_enabled(provider)
                .await
                .map_err(status)?,
        })
    }

    pub(super) async fn list_gateways(
        &self,
        request: pb::ListGatewaysRequest,
    ) -> Result<pb::ListGatewaysResponse, Status> {
        self.staff(request.telegram_user_id, Some(Permission::ManagePayments))
            .await?;
        let mut gateways = Vec::new();
        // Only checkout gateways can be switched: app-store purchases are already paid when reported.
        for provider in cybervpn_domain::PaymentProvider::ALL
            .iter()
            .copied()
            .filter(|provider| provider.takes_checkout())
        {
            gateways.push(self.gateway(provider).await?);
        }
        Ok(pb::ListGatewaysResponse { gateways })
    }

    pub(super) async fn set_gateway_enabled(
        &self,
        request: pb::SetGatewayEnabledRequest,
    ) -> Result<pb::SetGatewayEnabledResponse, Status> {
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::ManagePayments))
            .await?;
        let provider = parse_provider(&request.provider)?;
        if !provider.takes_checkout() {
            return Err(Status::invalid_argument(format!(
                "{} purchases are made in the mobile app and cannot be switched off",
                provider.as_str()
            )));
        }
        let before = self.gateway(provider).await?;
        if before.enabled != request.enabled {
            let now = Utc::now().trunc_subsecs(6);
            let txn = audit::begin(&self.state.db).await?;
            GatewaySwitches::on(&txn)
                .set(provider, request.enabled, now)
                .await
                .map_err(status)?;
            let change = Change {
                action: if request.enabled {
                    "gateway.enable"
                } else {
                    "gateway.disable"
                },
                target_kind: "gateway",
                target_id: uuid::Uuid::nil(),
                before: Some(
                    serde_json::json!({"provider": provider.as_str(), "enabled": before.enabled}),
                ),
                after: Some(
                    serde_json::json!({"provider": provider.as_str(), "enabled": request.enabled}),
                ),
            };
            audit::record(&txn, &staff, &RequestTag::grpc(), change, now).await?;
            audit::commit(txn).await?;
        }
        Ok(pb::SetGatewayEnabledResponse {
            gateway: Some(self.gateway(provider).await?),
        })
    }
}
