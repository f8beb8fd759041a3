//! Business analytics: when a trial turned into a paying customer (kept by the payment completion path, filled
//! here for trials that converted before), and the indexes the admin analytics reports scan by time range.
//!
//! The indexes are built without blocking writes (`CONCURRENTLY` on PostgreSQL), so this migration runs
//! outside a transaction and is safe to re-run after an interruption: the column is added only if missing,
//! the back-fill touches only unconverted trials, and an index left invalid by an interrupted build is
//! dropped and built again.

use sea_orm_migration::{
    prelude::*,
    schema::*,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// An index of this migration: name, table, key columns, and the column that must be non-null (a partial
/// index of the rows that have it).
struct AnalyticsIndex {
    name: &'static str,
    table: &'static str,
    columns: &'static [&'static str],
    only_set: Option<&'static str>,
}

/// Each report reads, per bucket (and currency, gateway or status), one range of one of these, and finds
/// everything it needs in the index (index-only scans).
const INDEXES: &[AnalyticsIndex] = &[
    // Revenue: credited payments (completed, or refunded after completion) by when they were credited.
    AnalyticsIndex {
        name: "ix_payments_revenue",
        table: "payments",
        columns: &["currency", "provider", "completed_at", "amount_minor"],
        only_set: Some("completed_at"),
    },
    // Revenue: refunds by when the money went back.
    AnalyticsIndex {
        name: "ix_payments_refunds",
        table: "payments",
        columns: &["currency", "provider", "refunded_at", "amount_minor"],
        only_set: Some("refunded_at"),
    },
    // Payment outcomes by when the payment was opened.
    AnalyticsIndex {
        name: "ix_payments_outcomes",
        table: "payments",
        columns: &["provider", "status", "created_at"],
        only_set: None,
    },
    // Growth: sign-ups and deletions.
    AnalyticsIndex {
        name: "ix_customers_created_at",
        table: "customers",
        columns: &["created_at"],
        only_set: None,
    },
    AnalyticsIndex {
        name: "ix_customers_deleted_at",
        table: "customers",
        columns: &["deleted_at"],
        only_set: Some("deleted_at"),
    },
    // Conversions: trials by activation, with whether they converted.
    AnalyticsIndex {
        name: "ix_trials_activated_at",
        table: "trials",
        columns: &["activated_at", "converted_at"],
        only_set: None,
    },
    // Subscriptions started.
    AnalyticsIndex {
        name: "ix_subscriptions_created_at",
        table: "subscriptions",
        columns: &["created_at", "plan_id"],
        only_set: None,
    },
    // Subscriptions ended, live at the start of the period, and active now by plan.
    AnalyticsIndex {
        name: "ix_subscriptions_expires_at",
        table: "subscriptions",
        columns: &["expires_at", "plan_id", "created_at", "status"],
        only_set: None,
    },
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// `CREATE INDEX CONCURRENTLY` cannot run inside a transaction.
    fn use_transaction(&self) -> Option<bool> {
        Some(false)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("trials", "converted_at").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Trials::Table)
                        .add_column(timestamp_with_time_zone_null(Trials::ConvertedAt))
                        .to_owned(),
                )
                .await?;
        }
        // A trial converted when its customer's first payment after the trial's start was credited.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE trials SET converted_at = (
                     SELECT MIN(p.completed_at) FROM payments p
                     WHERE p.customer_id = trials.customer_id AND p.completed_at >= trials.activated_at)
                 WHERE converted_at IS NULL AND EXISTS (
                     SELECT 1 FROM payments p
                     WHERE p.customer_id = trials.customer_id AND p.completed_at >= trials.activated_at)",
            )
            .await?;

        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for index in INDEXES {
            if postgres {
                drop_if_invalid(manager, index.name).await?;
            }
            let mut stmt = Index::create();
            stmt.name(index.name)
                .table(Alias::new(index.table))
                .if_not_exists();
            for column in index.columns {
                stmt.col(Alias::new(*column));
            }
            if let Some(column) = index.only_set {
                stmt.and_where(Expr::col(Alias::new(column)).is_not_null());
            }
            if postgres {
                stmt.concurrently();
            }
            manager.create_index(stmt.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in INDEXES.iter().rev() {
            manager
                .drop_index(
                    Index::drop()
                        .name(index.name)
                        .table(Alias::new(index.table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        if manager.has_column("trials", "converted_at").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Trials::Table)
                        .drop_column(Trials::ConvertedAt)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Drops index `name` if a concurrent build of it was interrupted (PostgreSQL keeps such an index, invalid,
/// and `IF NOT EXISTS` would then skip the rebuild).
async fn drop_if_invalid(manager: &SchemaManager<'_>, name: &str) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let invalid = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE c.relname = $1 AND NOT i.indisvalid",
            [name.into()],
        ))
        .await?
        .is_some();
    if invalid {
        conn.execute_unprepared(&format!("DROP INDEX CONCURRENTLY IF EXISTS \"{name}\""))
            .await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum Trials {
    Table,
    ConvertedAt,
}
