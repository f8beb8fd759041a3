//! Promo codes in the bot's admin panel (`AdminService`): list, create, switch off, with the same checks and
//! audit entries as `/api/v1/admin/promo-codes`.

use chrono::{Duration, SubsecRound, Utc};
use cybervpn_domain::{Permission, PromoBenefit, PromoCode, PromoCodeId};
use cybervpn_rpc::bot::v1 as pb;
use tonic::Status;

use super::{admin::Admin, benefit_text, parse_uuid, status};
use crate::routes::{audit::RequestTag, promo};

fn view(code: &PromoCode) -> pb::PromoCode {
    pb::PromoCode {
        id: code.id.as_uuid().to_string(),
        code: code.code.clone(),
        benefit: benefit_text(code.benefit),
        max_uses: code.max_uses.unwrap_or(0),
        used_count: code.used_count,
        is_active: code.is_active,
        valid_until: code
            .valid_until
            .map(|at| at.to_rfc3339())
            .unwrap_or_default(),
    }
}

impl Admin {
    pub(super) async fn list_promo_codes(
        &self,
        request: pb::ListPromoCodesRequest,
    ) -> Result<pb::ListPromoCodesResponse, Status> {
        self.staff(request.telegram_user_id, Some(Permission::ManagePromoCodes))
            .await?;
        let limit = match request.limit {
            0 => 10,
            n => u64::from(n.min(20)),
        };
        let codes = self
            .state
            .db
            .promos()
            .list(None, limit)
            .await
            .map_err(status)?;
        Ok(pb::ListPromoCodesResponse {
            promo_codes: codes.iter().map(view).collect(),
        })
    }

    pub(super) async fn create_promo_code(
        &self,
        request: pb::CreatePromoCodeRequest,
    ) -> Result<pb::CreatePromoCodeResponse, Status> {
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::ManagePromoCodes))
            .await?;
        let benefit = match (request.percent_off, request.bonus_days) {
            (percent, 0) if percent > 0 => PromoBenefit::PercentOff {
                percent: u8::try_from(percent)
                    .map_err(|_| Status::invalid_argument("percent_off must be 1 to 99"))?,
            },
            (0, days) if days > 0 => PromoBenefit::BonusDays { days },
            _ => {
                return Err(Status::invalid_argument(
                    "give exactly one of percent_off and bonus_days",
                ));
            }
        };
        let now = Utc::now().trunc_subsecs(6);
        let code = PromoCode {
            id: PromoCodeId::new(),
            code: PromoCode::normalize(&request.code).map_err(status)?,
            benefit,
            plan_id: None,
            max_uses: Some(request.max_uses).filter(|uses| *uses > 0),
            used_count: 0,
            valid_from: None,
            valid_until: (request.valid_days > 0)
                .then(|| now + Duration::days(i64::from(request.valid_days))),
            is_active: true,
            created_at: now,
            updated_at: now,
        };
        promo::create(&self.state, &staff, &RequestTag::grpc(), &code).await?;
        Ok(pb::CreatePromoCodeResponse {
            promo_code: Some(view(&code)),
        })
    }

    pub(super) async fn deactivate_promo_code(
        &self,
        request: pb::DeactivatePromoCodeRequest,
    ) -> Result<pb::DeactivatePromoCodeResponse, Status> {
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::ManagePromoCodes))
            .await?;
        let id = PromoCodeId::from_uuid(parse_uuid("promo_code_id", &request.promo_code_id)?);
        let deactivated = promo::deactivate(&self.state, &staff, &RequestTag::grpc(), id).await?;
        Ok(pb::DeactivatePromoCodeResponse { deactivated })
    }
}
