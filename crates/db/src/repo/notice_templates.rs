use chrono::{DateTime, Utc};
use cybervpn_domain::{Language, NoticeKind};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::OnConflict,
};

use crate::{DbError, entity::notice_template};

/// Customer notice texts reworded by staff.
#[derive(Debug, Clone, Copy)]
pub struct NoticeTemplates<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> NoticeTemplates<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// The text of `kind` in `language`: staff's wording, else the built-in one.
    pub async fn text(&self, kind: NoticeKind, language: Language) -> Result<String, DbError> {
        Ok(notice_template::Entity::find_by_id((
            kind.as_str().to_owned(),
            language.as_str().to_owned(),
        ))
        .one(self.conn)
        .await?
        .map_or_else(|| kind.default_text(language).to_owned(), |row| row.body))
    }

    /// Staff's wording of `kind` in `language`, if reworded.
    pub async fn reworded(
        &self,
        kind: NoticeKind,
        language: Language,
    ) -> Result<Option<String>, DbError> {
        Ok(notice_template::Entity::find()
            .filter(notice_template::Column::Kind.eq(kind.as_str()))
            .filter(notice_template::Column::Language.eq(language.as_str()))
            .one(self.conn)
            .await?
            .map(|row| row.body))
    }

    /// Rewords `kind` in `language` (the caller checked the text), or restores the built-in text with `None`.
    pub async fn set(
        &self,
        kind: NoticeKind,
        language: Language,
        body: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let Some(body) = body else {
            notice_template::Entity::delete_many()
                .filter(notice_template::Column::Kind.eq(kind.as_str()))
                .filter(notice_template::Column::Language.eq(language.as_str()))
                .exec(self.conn)
                .await?;
            return Ok(());
        };
        notice_template::Entity::insert(notice_template::ActiveModel {
            kind: Set(kind.as_str().to_owned()),
            language: Set(language.as_str().to_owned()),
            body: Set(body.to_owned()),
            updated_at: Set(crate::stored_time(now)),
        })
        .on_conflict(
            OnConflict::columns([
                notice_template::Column::Kind,
                notice_template::Column::Language,
            ])
            .update_columns([
                notice_template::Column::Body,
                notice_template::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }
}
