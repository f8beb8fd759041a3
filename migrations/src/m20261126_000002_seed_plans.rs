//! The default catalogue: 4 tiers × 4 durations, each priced in USD, RUB and Telegram Stars.
//!
//! Skips any plan code that already exists, so operators who pre-loaded their own catalogue keep it.

use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

use crate::m20261126_000001_core_schema::{PlanPrices, Plans};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// A tier's limits and monthly prices.
struct Tier {
    name: &'static str,
    /// `None` is unlimited.
    traffic_gib: Option<i64>,
    devices: i16,
    /// Monthly price in USD cents, RUB kopecks and Telegram Stars.
    usd: i64,
    rub: i64,
    xtr: i64,
}

const fn tier(
    name: &'static str,
    traffic_gib: Option<i64>,
    devices: i16,
    [usd, rub, xtr]: [i64; 3],
) -> Tier {
    Tier {
        name,
        traffic_gib,
        devices,
        usd,
        rub,
        xtr,
    }
}

const TIERS: [Tier; 4] = [
    tier("basic", Some(100), 1, [399, 29_900, 200]),
    tier("pro", Some(300), 3, [699, 54_900, 350]),
    tier("ultra", None, 5, [999, 79_900, 500]),
    tier("cyber", None, 10, [1_499, 119_900, 750]),
];

/// (days, months billed, discount percent).
const DURATIONS: [(i16, i64, i64); 4] = [(30, 1, 0), (90, 3, 10), (180, 6, 15), (365, 12, 20)];

const GIB: i64 = 1024 * 1024 * 1024;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let now = chrono::Utc::now();
        let mut sort_order = 0_i32;
        for tier in TIERS {
            for (days, months, discount) in DURATIONS {
                sort_order += 10;
                let code = format!("{}_{days}", tier.name);
                let exists = Query::select()
                    .column(Plans::Id)
                    .from(Plans::Table)
                    .and_where(Expr::col(Plans::Code).eq(code.as_str()))
                    .to_owned();
                if db.query_one(&exists).await?.is_some() {
                    continue;
                }
                let id = uuid::Uuid::now_v7();
                let insert_plan = Query::insert()
                    .into_table(Plans::Table)
                    .columns([
                        Plans::Id,
                        Plans::Code,
                        Plans::Tier,
                        Plans::DurationDays,
                        Plans::TrafficLimitBytes,
                        Plans::DeviceLimit,
                        Plans::IsActive,
                        Plans::SortOrder,
                        Plans::CreatedAt,
                        Plans::UpdatedAt,
                    ])
                    .values_panic([
                        id.into(),
                        code.into(),
                        tier.name.into(),
                        days.into(),
                        tier.traffic_gib.map(|gib| gib * GIB).into(),
                        tier.devices.into(),
                        true.into(),
                        sort_order.into(),
                        now.into(),
                        now.into(),
                    ])
                    .to_owned();
                db.execute(&insert_plan).await?;
                for (currency, monthly) in [("USD", tier.usd), ("RUB", tier.rub), ("XTR", tier.xtr)]
                {
                    let insert_price = Query::insert()
                        .into_table(PlanPrices::Table)
                        .columns([
                            PlanPrices::PlanId,
                            PlanPrices::Currency,
                            PlanPrices::AmountMinor,
                        ])
                        .values_panic([
                            id.into(),
                            currency.into(),
                            price(monthly, months, discount).into(),
                        ])
                        .to_owned();
                    db.execute(&insert_price).await?;
                }
            }
        }
        Ok(())
    }
}

/// Integer price of `months` at `discount` percent off, in the currency's minor units.
const fn price(monthly: i64, months: i64, discount: i64) -> i64 {
    monthly * months * (100 - discount) / 100
}
