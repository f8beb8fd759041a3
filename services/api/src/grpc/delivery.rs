//! `cybervpn.bot.v1.DeliveryService`: what the bot delivers from the queue (notifications, broadcasts) and
//! what happened; and the broadcast methods of `AdminService`.

use chrono::{SubsecRound, Utc};
use cybervpn_db::{Audience, Broadcast, Broadcasts, DbError, NewBroadcast, Step, TransactionTrait};
use cybervpn_domain::{
    BroadcastAudience, CustomerId, DeliveryOutcome, Permission, StaffAccount, broadcast,
};
use cybervpn_jobs::{catalog::SendBroadcast, outbox};
use cybervpn_rpc::bot::v1::{self as pb, delivery_service_server::DeliveryService};
use tonic::{Request, Response, Status};

use super::{admin::Admin, parse_uuid, status};
use crate::{
    routes::audit::{self, Change, RequestTag},
    state::AppState,
};

/// The delivery service.
pub(crate) struct Delivery {
    pub(crate) state: actix_web::web::Data<AppState>,
}

fn audience_of(audience: i32) -> Result<BroadcastAudience, Status> {
    match pb::BroadcastAudience::try_from(audience) {
        Ok(pb::BroadcastAudience::All) => Ok(BroadcastAudience::All),
        Ok(pb::BroadcastAudience::Active) => Ok(BroadcastAudience::Active),
        Ok(pb::BroadcastAudience::Trial) => Ok(BroadcastAudience::Trial),
        Ok(pb::BroadcastAudience::Unspecified) | Err(_) => Err(Status::invalid_argument(
            "audience must be all, active or trial",
        )),
    }
}

const fn audience_pb(audience: BroadcastAudience) -> pb::BroadcastAudience {
    match audience {
        BroadcastAudience::All => pb::BroadcastAudience::All,
        BroadcastAudience::Active => pb::BroadcastAudience::Active,
        BroadcastAudience::Trial => pb::BroadcastAudience::Trial,
    }
}

fn view(broadcast: &Broadcast) -> pb::Broadcast {
    pb::Broadcast {
        id: broadcast.id.to_string(),
        audience: audience_pb(broadcast.audience).into(),
        text: broadcast.text.clone(),
        photo_file_id: broadcast.photo_file_id.clone().unwrap_or_default(),
        status: broadcast.status.as_str().to_owned(),
        total: broadcast.total,
        sent: broadcast.sent,
        blocked: broadcast.blocked,
        failed: broadcast.failed,
        unconfirmed: broadcast.unconfirmed,
    }
}

fn change(action: &'static str, broadcast: &Broadcast) -> Change {
    Change {
        action,
        target_kind: "broadcast",
        target_id: broadcast.id,
        before: None,
        after: Some(serde_json::json!({
            "audience": broadcast.audience.as_str(),
            "status": broadcast.status.as_str(),
            "total": broadcast.total,
        })),
    }
}

impl Admin {
    /// The broadcast `id`, for a staff member who may send broadcasts.
    async fn broadcast_for(
        &self,
        telegram_user_id: i64,
        id: &str,
    ) -> Result<(StaffAccount, Broadcast), Status> {
        let staff = self
            .staff(telegram_user_id, Some(Permission::SendBroadcasts))
            .await?;
        let id = parse_uuid("broadcast_id", id)?;
        let broadcast = Broadcasts::on(self.state.db.conn())
            .get(id)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found("broadcast not found"))?;
        Ok((staff, broadcast))
    }

    pub(super) async fn create_broadcast(
        &self,
        request: pb::CreateBroadcastRequest,
    ) -> Result<pb::CreateBroadcastResponse, Status> {
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::SendBroadcasts))
            .await?;
        let audience = audience_of(request.audience)?;
        let photo = Some(request.photo_file_id.trim().to_owned()).filter(|p| !p.is_empty());
        if photo.as_ref().is_some_and(|p| p.len() > 256) {
            return Err(Status::invalid_argument("photo_file_id is too long"));
        }
        broadcast::validate_text(&request.text, photo.is_some()).map_err(status)?;
        let now = Utc::now().trunc_subsecs(6);
        let repo = Broadcasts::on(self.state.db.conn());
        let mut draft = repo
            .create(
                NewBroadcast {
                    created_by: staff.id,
                    admin_chat_id: request.report_chat_id,
                    audience,
                    text: request.text,
                    photo_file_id: photo,
                },
                now,
            )
            .await
            .map_err(status)?;
        let size = repo.audience_size(audience, now).await.map_err(status)?;
        draft.total = u32::try_from(size).unwrap_or(u32::MAX);
        Ok(pb::CreateBroadcastResponse {
            broadcast: Some(view(&draft)),
        })
    }

    pub(super) async fn start_broadcast(
        &self,
        request: pb::StartBroadcastRequest,
    ) -> Result<pb::StartBroadcastResponse, Status> {
        let (staff, draft) = self
            .broadcast_for(request.telegram_user_id, &request.broadcast_id)
            .await?;
        let now = Utc::now().trunc_subsecs(6);
        let txn = audit::begin(&self.state.db).await?;
        let started = Broadcasts::on(&txn)
            .start(draft.id, now)
            .await
            .map_err(status)?;
        outbox::enqueue(
            &txn,
            &SendBroadcast {
                broadcast_id: started.id,
            },
            now,
        )
        .await
        .map_err(status)?;
        audit::record(
            &txn,
            &staff,
            &RequestTag::grpc(),
            change("broadcast.start", &started),
            now,
        )
        .await?;
        audit::commit(txn).await?;
        Ok(pb::StartBroadcastResponse {
            broadcast: Some(view(&started)),
        })
    }

    pub(super) async fn cancel_broadcast(
        &self,
        request: pb::CancelBroadcastRequest,
    ) -> Result<pb::CancelBroadcastResponse, Status> {
        let (staff, broadcast) = self
            .broadcast_for(request.telegram_user_id, &request.broadcast_id)
            .await?;
        let now = Utc::now().trunc_subsecs(6);
        let txn = audit::begin(&self.state.db).await?;
        let cancelled = Broadcasts::on(&txn)
            .cancel(broadcast.id, now)
            .await
            .map_err(status)?;
        if cancelled {
            audit::record(
                &txn,
                &staff,
                &RequestTag::grpc(),
                change("broadcast.cancel", &broadcast),
                now,
            )
            .await?;
        }
        audit::commit(txn).await?;
        Ok(pb::CancelBroadcastResponse { cancelled })
    }

    pub(super) async fn get_broadcast(
        &self,
        request: pb::GetBroadcastRequest,
    ) -> Result<pb::GetBroadcastResponse, Status> {
        let (_, broadcast) = self
            .broadcast_for(request.telegram_user_id, &request.broadcast_id)
            .await?;
        Ok(pb::GetBroadcastResponse {
            broadcast: Some(view(&broadcast)),
        })
    }
}

#[tonic::async_trait]
impl DeliveryService for Delivery {
    async fn get_notification(
        &self,
        request: Request<pb::GetNotificationRequest>,
    ) -> Result<Response<pb::GetNotificationResponse>, Status> {
        let id = parse_uuid("notification_id", &request.into_inner().notification_id)?;
        let Some(notification) = self
            .state
            .db
            .notifications()
            .get(id)
            .await
            .map_err(status)?
        else {
            return Ok(Response::new(pb::GetNotificationResponse::default()));
        };
        let chat_ids = match notification.audience {
            Audience::Staff => self.state.config.telegram.admin_chat_ids.clone(),
            Audience::Customer(customer) => match self.state.db.customers().get(customer).await {
                Ok(customer) => customer.telegram_id.map(|t| t.get()).into_iter().collect(),
                Err(DbError::Domain(_)) => Vec::new(),
                Err(err) => return Err(status(err)),
            },
        };
        Ok(Response::new(pb::GetNotificationResponse {
            found: true,
            delivered: notification.sent_at.is_some(),
            kind: notification.kind,
            body: notification.body,
            chat_ids,
        }))
    }

    async fn record_notification_delivery(
        &self,
        request: Request<pb::RecordNotificationDeliveryRequest>,
    ) -> Result<Response<pb::RecordNotificationDeliveryResponse>, Status> {
        let request = request.into_inner();
        let id = parse_uuid("notification_id", &request.notification_id)?;
        let repo = self.state.db.notifications();
        if request.delivered {
            repo.mark_sent(id, Utc::now()).await.map_err(status)?;
        } else {
            let error: String = request.error.chars().take(500).collect();
            repo.mark_failed(id, &error).await.map_err(status)?;
        }
        Ok(Response::new(pb::RecordNotificationDeliveryResponse {}))
    }

    async fn advance_broadcast(
        &self,
        request: Request<pb::AdvanceBroadcastRequest>,
    ) -> Result<Response<pb::AdvanceBroadcastResponse>, Status> {
        let request = request.into_inner();
        let id = parse_uuid("broadcast_id", &request.broadcast_id)?;
        let run = parse_uuid("run_id", &request.run_id)?;
        let report = match request.report {
            None => None,
            Some(report) => {
                let customer =
                    CustomerId::from_uuid(parse_uuid("customer_id", &report.customer_id)?);
                let outcome = match pb::DeliveryOutcome::try_from(report.outcome) {
                    Ok(pb::DeliveryOutcome::Sent) => DeliveryOutcome::Sent,
                    Ok(pb::DeliveryOutcome::Blocked) => DeliveryOutcome::Blocked,
                    Ok(pb::DeliveryOutcome::Failed) => DeliveryOutcome::Failed,
                    Ok(pb::DeliveryOutcome::Unspecified) | Err(_) => {
                        return Err(Status::invalid_argument(
                            "outcome must be sent, blocked or failed",
                        ));
                    }
                };
                Some((
                    customer,
                    outcome,
                    Some(report.error).filter(|e| !e.is_empty()),
                ))
            }
        };
        let txn = self
            .state
            .db
            .conn()
            .begin()
            .await
            .map_err(|e| status(DbError::from(e)))?;
        let step = Broadcasts::on(&txn)
            .advance(id, run, report, !request.stop, Utc::now())
            .await
            .map_err(status)?;
        txn.commit().await.map_err(|e| status(DbError::from(e)))?;
        let mut response = pb::AdvanceBroadcastResponse::default();
        match step {
            Step::Send(recipient) => {
                response.set_step(pb::BroadcastStep::Send);
                response.customer_id = recipient.customer_id.as_uuid().to_string();
                response.telegram_id = recipient.telegram_id;
            }
            Step::Wait => response.set_step(pb::BroadcastStep::Wait),
            Step::Finished { broadcast, first } => {
                response.set_step(pb::BroadcastStep::Finished);
                if first {
                    response.report_to_chat_id = broadcast.admin_chat_id;
                }
                response.broadcast = Some(view(&broadcast));
            }
            Step::Stopped => response.set_step(pb::BroadcastStep::Stopped),
        }
        Ok(Response::new(response))
    }

    async fn get_broadcast_content(
        &self,
        request: Request<pb::GetBroadcastContentRequest>,
    ) -> Result<Response<pb::GetBroadcastContentResponse>, Status> {
        let id = parse_uuid("broadcast_id", &request.into_inner().broadcast_id)?;
        let broadcast = Broadcasts::on(self.state.db.conn())
            .get(id)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found("broadcast not found"))?;
        Ok(Response::new(pb::GetBroadcastContentResponse {
            broadcast: Some(view(&broadcast)),
        }))
    }

    async fn resume_broadcasts(
        &self,
        _request: Request<pb::ResumeBroadcastsRequest>,
    ) -> Result<Response<pb::ResumeBroadcastsResponse>, Status> {
        let now = Utc::now().trunc_subsecs(6);
        let txn = self
            .state
            .db
            .conn()
            .begin()
            .await
            .map_err(|e| status(DbError::from(e)))?;
        let sending = Broadcasts::on(&txn).sending().await.map_err(status)?;
        for broadcast_id in &sending {
            outbox::enqueue(
                &txn,
                &SendBroadcast {
                    broadcast_id: *broadcast_id,
                },
                now,
            )
            .await
            .map_err(status)?;
        }
        txn.commit().await.map_err(|e| status(DbError::from(e)))?;
        Ok(Response::new(pb::ResumeBroadcastsResponse {
            resumed: u32::try_from(sending.len()).unwrap_or(u32::MAX),
        }))
    }
}
