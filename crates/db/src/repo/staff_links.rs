use chrono::{DateTime, Utc};
use cybervpn_domain::{StaffId, TelegramId};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};

use crate::{
    DbError,
    entity::{staff_link_code, staff_telegram_link},
};

/// Staff accounts linked to Telegram users, and the one-time codes that link them.
#[derive(Debug, Clone, Copy)]
pub struct StaffLinks<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> StaffLinks<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Stores a one-time code (its hash) for `staff`, valid until `expires_at`.
    pub async fn issue_code(
        &self,
        code_hash: &str,
        staff: StaffId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        staff_link_code::Entity::insert(staff_link_code::ActiveModel {
            code_hash: Set(code_hash.to_owned()),
            staff_id: Set(staff.as_uuid()),
            expires_at: Set(crate::stored_time(expires_at)),
            used_at: Set(None),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// Uses the code with this hash (once, before it expires): the staff account it links, if valid.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StaffId>, DbError> {
        let now = crate::stored_time(now);
        let Some(code) = staff_link_code::Entity::find_by_id(code_hash.to_owned())
            .one(self.conn)
            .await?
        else {
            return Ok(None);
        };
        // Conditional: two redemptions of one code cannot both succeed.
        let used = staff_link_code::Entity::update_many()
            .col_expr(staff_link_code::Column::UsedAt, Expr::value(now))
            .filter(staff_link_code::Column::CodeHash.eq(code_hash))
            .filter(staff_link_code::Column::UsedAt.is_null())
            .filter(staff_link_code::Column::ExpiresAt.gt(now))
            .exec(self.conn)
            .await?;
        Ok((used.rows_affected == 1).then(|| StaffId::from_uuid(code.staff_id)))
    }

    /// Links `staff` to `telegram` (replacing the staff member's previous link); a Telegram account linked
    /// to another staff member is a `Conflict`.
    pub async fn link(
        &self,
        staff: StaffId,
        telegram: TelegramId,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        staff_telegram_link::Entity::insert(staff_telegram_link::ActiveModel {
            staff_id: Set(staff.as_uuid()),
            telegram_id: Set(telegram.get()),
            linked_at: Set(crate::stored_time(now)),
        })
        .on_conflict(
            OnConflict::column(staff_telegram_link::Column::StaffId)
                .update_columns([
                    staff_telegram_link::Column::TelegramId,
                    staff_telegram_link::Column::LinkedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// The staff account linked to this Telegram user, if any.
    pub async fn staff_of(&self, telegram: TelegramId) -> Result<Option<StaffId>, DbError> {
        Ok(staff_telegram_link::Entity::find()
            .filter(staff_telegram_link::Column::TelegramId.eq(telegram.get()))
            .one(self.conn)
            .await?
            .map(|link| StaffId::from_uuid(link.staff_id)))
    }
}
