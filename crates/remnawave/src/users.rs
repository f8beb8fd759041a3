//! User operations (`/api/users`), keyed by the numeric id.

use serde::Serialize;

use crate::{
    CreateUser, Panel, PanelError, ResolvedUser, StreamQuery, UpdateUser, User, UserList, UserPage,
    UserRef, UserStatus,
    client::{Call, segment},
};

/// Panel code: username already exists.
const USERNAME_EXISTS: &str = "A019";
/// Panel code: user already disabled.
const ALREADY_DISABLED: &str = "A029";
/// Panel code: user already enabled.
const ALREADY_ENABLED: &str = "A030";

/// Turns the panel's "no such user" into `None`; every other error stays an error.
fn found<T>(result: Result<T, PanelError>) -> Result<Option<T>, PanelError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// Treats the given panel code as success (an action that was already done).
fn already(result: Result<(), PanelError>, code: &str) -> Result<(), PanelError> {
    match result {
        Err(err) if err.code() == Some(code) => Ok(()),
        other => other,
    }
}

impl Panel {
    /// Creates a user; a second create of the same username fails with `A019` (not retried).
    pub async fn create_user(&self, user: &CreateUser) -> Result<User, PanelError> {
        self.fetch(Call::post("users.create", "/users".to_owned()).json(user))
            .await
    }

    /// Creates a user, or returns the existing one with that username as it is (not updated to
    /// `user`): safe to repeat, so it is retried on transient failures (a repeated create answers
    /// `A019`, then we fetch by username).
    pub async fn ensure_user(&self, user: &CreateUser) -> Result<User, PanelError> {
        let call = Call::post("users.create", "/users".to_owned())
            .json(user)
            .repeatable();
        match self.fetch(call).await {
            Err(err) if err.code() == Some(USERNAME_EXISTS) => {
                match self.user_by_username(&user.username).await? {
                    Some(existing) => Ok(existing),
                    // Deleted between the two calls: report the original conflict.
                    None => Err(err),
                }
            }
            other => other,
        }
    }

    /// The user with this id, or `None` when the panel says it does not exist (404 `A025`/`A063`).
    pub async fn user(&self, id: i64) -> Result<Option<User>, PanelError> {
        found(
            self.fetch(Call::get("users.get", format!("/users/{id}")))
                .await,
        )
    }

    /// The user with this username, or `None`.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, PanelError> {
        let path = format!("/users/by-username/{}", segment(username));
        found(self.fetch(Call::get("users.get_by_username", path)).await)
    }

    /// The user with this short uuid (subscription URL segment), or `None`.
    pub async fn user_by_short_uuid(&self, short_uuid: &str) -> Result<Option<User>, PanelError> {
        let path = format!("/users/by-short-uuid/{}", segment(short_uuid));
        found(self.fetch(Call::get("users.get_by_short_uuid", path)).await)
    }

    /// The id, username and short uuid of the user named by `user`, or `None`.
    pub async fn resolve(&self, user: &UserRef) -> Result<Option<ResolvedUser>, PanelError> {
        // A lookup, not a change: safe to repeat.
        let call = Call::post("users.resolve", "/users/resolve".to_owned())
            .json(user)
            .repeatable();
        found(self.fetch(call).await)
    }

    /// One page of the user stream (the reconciliation feed), filtered by `query`.
    pub async fn users_stream(&self, query: &StreamQuery) -> Result<UserPage, PanelError> {
        const OPERATION: &str = "users.stream";
        if !(1..=1000).contains(&query.size) {
            return Err(PanelError::Invalid {
                operation: OPERATION,
                reason: format!("page size {} is outside 1..=1000", query.size),
            });
        }
        let call = Call::get(OPERATION, "/users/stream".to_owned())
            .query("cursor", query.cursor.as_deref())
            .query("size", Some(query.size))
            .query("telegramId", query.telegram_id)
            .query("status", query.status.map(UserStatus::as_str))
            .query("tag", query.tag.as_deref());
        self.fetch(call).await
    }

    /// Every user matching `query`, walking the stream page by page from `query.cursor`.
    pub async fn all_users(&self, query: &StreamQuery) -> Result<Vec<User>, PanelError> {
        let mut query = query.clone();
        let mut users = Vec::new();
        loop {
            let page = self.users_stream(&query).await?;
            users.extend(page.users);
            if !page.has_more {
                return Ok(users);
            }
            match page.next_cursor {
                Some(next) if query.cursor.as_ref() != Some(&next) => query.cursor = Some(next),
                // A page that does not move on would loop forever.
                _ => {
                    return Err(PanelError::Decode {
                        operation: "users.stream",
                        reason: "hasMore without a new nextCursor".to_owned(),
                    });
                }
            }
        }
    }

    /// Every user with this Telegram id (not unique in the panel).
    pub async fn users_by_telegram_id(&self, telegram_id: i64) -> Result<Vec<User>, PanelError> {
        self.all_users(&StreamQuery {
            telegram_id: Some(telegram_id),
            ..StreamQuery::default()
        })
        .await
    }

    /// One page of the offset-based list (`start` users skipped, at most `size` returned).
    pub async fn users_page(&self, start: u64, size: u32) -> Result<UserList, PanelError> {
        let call = Call::get("users.list", "/users".to_owned())
            .query("start", Some(start))
            .query("size", Some(size));
        self.fetch(call).await
    }

    /// Sets absolute values on a user (safe to repeat); returns the updated user.
    pub async fn update_user(&self, update: &UpdateUser) -> Result<User, PanelError> {
        const OPERATION: &str = "users.update";
        if matches!(
            update.status,
            Some(UserStatus::Limited | UserStatus::Expired)
        ) {
            return Err(PanelError::Invalid {
                operation: OPERATION,
                reason: "only ACTIVE or DISABLED can be set".to_owned(),
            });
        }
        self.fetch(Call::patch(OPERATION, "/users".to_owned()).json(update))
            .await
    }

    /// Adds `days` (≥ 1) to the user's expiry; an expired user restarts from now. Never retried:
    /// a repeat would add the days twice.
    pub async fn extend(&self, id: i64, days: u32) -> Result<User, PanelError> {
        #[derive(Serialize)]
        struct Extend {
            days: u32,
        }
        const OPERATION: &str = "users.extend";
        if days == 0 {
            return Err(PanelError::Invalid {
                operation: OPERATION,
                reason: "days must be at least 1".to_owned(),
            });
        }
        let call =
            Call::post(OPERATION, format!("/users/{id}/actions/extend")).json(&Extend { days });
        self.fetch(call).await
    }

    /// Enables the user; already enabled (`A030`) counts as done.
    pub async fn enable(&self, id: i64) -> Result<(), PanelError> {
        let call = Call::post("users.enable", format!("/users/{id}/actions/enable")).repeatable();
        already(self.send(call).await, ALREADY_ENABLED)
    }

    /// Disables the user; already disabled (`A029`) counts as done.
    pub async fn disable(&self, id: i64) -> Result<(), PanelError> {
        let call = Call::post("users.disable", format!("/users/{id}/actions/disable")).repeatable();
        already(self.send(call).await, ALREADY_DISABLED)
    }

    /// Zeroes the user's used traffic. Never retried.
    pub async fn reset_traffic(&self, id: i64) -> Result<User, PanelError> {
        let path = format!("/users/{id}/actions/reset-traffic");
        self.fetch(Call::post("users.reset_traffic", path)).await
    }

    /// Revokes the subscription: new short uuid, new subscription URL, new credentials. Never retried.
    pub async fn revoke(&self, id: i64) -> Result<User, PanelError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Revoke {
            revoke_only_passwords: bool,
        }
        let call =
            Call::post("users.revoke", format!("/users/{id}/actions/revoke")).json(&Revoke {
                revoke_only_passwords: false,
            });
        self.fetch(call).await
    }

    /// Deletes the user; an already missing user (404) counts as done.
    pub async fn delete_user(&self, id: i64) -> Result<(), PanelError> {
        match self
            .send(Call::delete("users.delete", format!("/users/{id}")))
            .await
        {
            Err(err) if err.status() == Some(404) => Ok(()),
            other => other,
        }
    }
}
