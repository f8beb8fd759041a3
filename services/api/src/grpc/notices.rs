//! Customer notice texts in the bot's admin panel (`AdminService`): staff reword them per language.

use chrono::{SubsecRound, Utc};
use cybervpn_db::NoticeTemplates;
use cybervpn_domain::{Language, NoticeKind, Permission};
use cybervpn_rpc::bot::v1 as pb;
use tonic::Status;

use super::{admin::Admin, status};
use crate::routes::audit::{self, Change, RequestTag};

impl Admin {
    async fn notice(
        &self,
        kind: NoticeKind,
        language: Language,
    ) -> Result<pb::NoticeTemplate, Status> {
        let reworded = NoticeTemplates::on(self.state.db.conn())
            .reworded(kind, language)
            .await
            .map_err(status)?;
        Ok(pb::NoticeTemplate {
            kind: kind.as_str().to_owned(),
            language: language.as_str().to_owned(),
            is_default: reworded.is_none(),
            text: reworded.unwrap_or_else(|| kind.default_text(language).to_owned()),
            placeholders: kind
                .placeholders()
                .iter()
                .map(|p| format!("{{{p}}}"))
                .collect(),
        })
    }

    pub(super) async fn list_notice_templates(
        &self,
        request: pb::ListNoticeTemplatesRequest,
    ) -> Result<pb::ListNoticeTemplatesResponse, Status> {
        self.staff(request.telegram_user_id, Some(Permission::ManageTemplates))
            .await?;
        let mut templates = Vec::new();
        for kind in NoticeKind::ALL {
            for language in Language::ALL {
                templates.push(self.notice(*kind, *language).await?);
            }
        }
        Ok(pb::ListNoticeTemplatesResponse { templates })
    }

    pub(super) async fn set_notice_template(
        &self,
        request: pb::SetNoticeTemplateRequest,
    ) -> Result<pb::SetNoticeTemplateResponse, Status> {
        let staff = self
            .staff(request.telegram_user_id, Some(Permission::ManageTemplates))
            .await?;
        let kind: NoticeKind = request.kind.parse().map_err(status)?;
        let language: Language = request.language.parse().map_err(status)?;
        let text = Some(request.text.trim()).filter(|t| !t.is_empty());
        if let Some(text) = text {
            kind.validate(text).map_err(status)?;
        }
        let before = self.notice(kind, language).await?;
        let now = Utc::now().trunc_subsecs(6);
        let txn = audit::begin(&self.state.db).await?;
        NoticeTemplates::on(&txn)
            .set(kind, language, text, now)
            .await
            .map_err(status)?;
        let snapshot = |text: &str| serde_json::json!({"kind": kind.as_str(), "language": language.as_str(), "text": text});
        let change = Change {
            action: "notice_template.update",
            target_kind: "notice_template",
            target_id: uuid::Uuid::nil(),
            before: Some(snapshot(&before.text)),
            after: Some(snapshot(text.unwrap_or(kind.default_text(language)))),
        };
        audit::record(&txn, &staff, &RequestTag::grpc(), change, now).await?;
        audit::commit(txn).await?;
        Ok(pb::SetNoticeTemplateResponse {
            template: Some(self.notice(kind, language).await?),
        })
    }
}
