//! Repository tests against real PostgreSQL and SQLite databases.
#![expect(clippy::unwrap_used, reason = "a failed step fails the test")]

use chrono::Duration;
use chrono::Utc;
use cybervpn_db::{
    ActiveValue::Set, Audit, AuditEntry, CustomerSearch, Customers, Db, DbError, EntityTrait,
    Plans, Rotation, TransactionTrait, entity,
};
use cybervpn_domain::{
    Currency, CustomerId, CustomerStatus, DomainError, Email, Language, Money, NewCustomer,
    Payment, PaymentId, PaymentProvider, PaymentStatus, Plan, PlanDuration, PlanId, Principal,
    StaffId, TelegramId, TrafficLimit, Username,
};
use cybervpn_testkit::{Backend, TestDb, on_both_backends};

on_both_backends!(
    refresh_tokens_rotate_once_and_reuse_revokes_the_family,
    totp_steps_and_backup_codes_are_accepted_at_most_once,
    customers_are_unique_per_email_and_telegram_id,
    payments_are_unique_per_provider_payment_id,
    seeded_catalogue_round_trips,
    customer_search_matches_text_status_and_subscriptions,
    soft_delete_scrubs_personal_data_once,
    plans_are_created_and_updated_with_their_prices,
    an_uncommitted_change_leaves_no_trace,
);

async fn open(backend: Backend) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).await;
    let db = Db::from_connection(test_db.connect().await);
    (test_db, db)
}

fn new_customer(email: Option<&str>, telegram: Option<i64>) -> NewCustomer {
    NewCustomer::new(
        email.map(|e| Email::parse(e).unwrap()),
        telegram.map(|t| TelegramId::new(t).unwrap()),
        Username::parse("neo_42").unwrap(),
        Language::Ru,
    )
    .unwrap()
}

fn assert_conflict(result: Result<impl std::fmt::Debug, DbError>, what: &str) {
    match result {
        Err(DbError::Domain(DomainError::Conflict { what: got })) => assert_eq!(got, what),
        other => panic!("expected a conflict on {what}, got {other:?}"),
    }
}

async fn customers_are_unique_per_email_and_telegram_id(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let first = db
        .customers()
        .create(new_customer(Some("Neo@Example.com"), Some(777)), now)
        .await
        .unwrap();
    assert_eq!(db.customers().get(first.id).await.unwrap(), first);

    // Emails are stored normalised, so case does not dodge the constraint.
    assert_conflict(
        db.customers()
            .create(new_customer(Some("neo@example.COM"), None), now)
            .await,
        "customer with this email",
    );
    assert_conflict(
        db.customers()
            .create(new_customer(None, Some(777)), now)
            .await,
        "customer with this Telegram id",
    );
    // Both fields are optional: many customers may lack an email or a Telegram id.
    db.customers()
        .create(new_customer(None, Some(778)), now)
        .await
        .unwrap();
    db.customers()
        .create(new_customer(Some("trinity@example.com"), None), now)
        .await
        .unwrap();

    let by_telegram = db
        .customers()
        .find_by_telegram_id(TelegramId::new(777).unwrap())
        .await
        .unwrap();
    assert_eq!(by_telegram.map(|c| c.id), Some(first.id));
    let by_email = db
        .customers()
        .find_by_email(&Email::parse("NEO@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(by_email.map(|c| c.id), Some(first.id));

    match db.customers().get(CustomerId::new()).await {
        Err(DbError::Domain(DomainError::NotFound { entity })) => assert_eq!(entity, "customer"),
        other => panic!("expected not found, got {other:?}"),
    }
}

async fn payments_are_unique_per_provider_payment_id(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let customer = db
        .customers()
        .create(new_customer(Some("buyer@example.com"), None), now)
        .await
        .unwrap();
    let plan = db.plans().list_active().await.unwrap().remove(0);
    let payment = |provider, id: &str| Payment {
        id: PaymentId::new(),
        customer_id: customer.id,
        plan_id: Some(plan.id),
        amount: Money::new(499, Currency::Usd).unwrap(),
        status: PaymentStatus::Pending,
        provider,
        provider_payment_id: Some(id.to_owned()),
        days: 30,
        invoice_url: None,
        expires_at: None,
        completed_at: None,
        review_reason: None,
        promo_code_id: None,
        refunded_at: None,
        refund_reason: None,
        created_at: now,
        updated_at: now,
    };
    let first = db
        .payments()
        .create(payment(PaymentProvider::Stripe, "pi_123"))
        .await
        .unwrap();
    assert_eq!(db.payments().get(first.id).await.unwrap(), first);

    assert_conflict(
        db.payments()
            .create(payment(PaymentProvider::Stripe, "pi_123"))
            .await,
        "payment with this provider payment id",
    );
    // The same id at another provider is a different payment.
    db.payments()
        .create(payment(PaymentProvider::YooKassa, "pi_123"))
        .await
        .unwrap();

    let found = db
        .payments()
        .find_by_provider_id(PaymentProvider::Stripe, "pi_123")
        .await
        .unwrap();
    assert_eq!(found.map(|p| p.id), Some(first.id));
}

async fn seeded_catalogue_round_trips(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let plans = db.plans().list_active().await.unwrap();
    assert_eq!(plans.len(), 16);
    for plan in &plans {
        assert_eq!(plan.prices().len(), 3, "{}", plan.code);
        assert_eq!(db.plans().get(plan.id).await.unwrap(), *plan);
    }
    let cyber_365 = plans.iter().find(|p| p.code == "cyber_365").unwrap();
    // 14.99 USD a month × 12 months, 20 % off.
    assert_eq!(
        cyber_365.price_in(Currency::Usd),
        Some(Money::new(14_390, Currency::Usd).unwrap())
    );
    assert!(db.pending_migrations().await.unwrap().is_empty());
    db.ping().await.unwrap();
}

async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let later = now + Duration::days(7);
    let customer = db
        .customers()
        .create(new_customer(Some("s@example.com"), None), now)
        .await
        .unwrap();
    let me = Principal::Customer(customer.id);
    let sessions = db.sessions();
    sessions.start(me, "h1".into(), later, now).await.unwrap();
    sessions
        .start(me, "other-device".into(), later, now)
        .await
        .unwrap();

    assert_eq!(
        sessions
            .rotate("h1", "h2".into(), later, now)
            .await
            .unwrap(),
        Rotation::Rotated { principal: me }
    );
    assert_eq!(
        sessions
            .rotate("h2", "h3".into(), later, now)
            .await
            .unwrap(),
        Rotation::Rotated { principal: me }
    );
    // h1 was already used: reuse revokes h1's whole family, including the live h3.
    assert_eq!(
        sessions.rotate("h1", "x".into(), later, now).await.unwrap(),
        Rotation::Reused { principal: me }
    );
    assert_eq!(
        sessions
            .rotate("h3", "h4".into(), later, now)
            .await
            .unwrap(),
        Rotation::Reused { principal: me }
    );
    // Another sign-in's family is untouched.
    assert_eq!(
        sessions
            .rotate("other-device", "o2".into(), later, now)
            .await
            .unwrap(),
        Rotation::Rotated { principal: me }
    );
    assert_eq!(
        sessions
            .rotate("nope", "n".into(), later, now)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    sessions
        .start(
            me,
            "old".into(),
            now - Duration::seconds(1),
            now - Duration::days(8),
        )
        .await
        .unwrap();
    assert_eq!(
        sessions
            .rotate("old", "n2".into(), later, now)
            .await
            .unwrap(),
        Rotation::Expired
    );
    // Still unrevoked: `other-device` (used), `o2` (live) and `old` (expired).
    assert_eq!(sessions.revoke_all(me, now).await.unwrap(), 3);
    assert_eq!(
        sessions
            .rotate("o2", "o3".into(), later, now)
            .await
            .unwrap(),
        Rotation::Reused { principal: me }
    );
}

async fn totp_steps_and_backup_codes_are_accepted_at_most_once(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let customer = db
        .customers()
        .create(new_customer(Some("t@example.com"), None), now)
        .await
        .unwrap();
    let me = Principal::Customer(customer.id);
    let tf = db.two_factor();
    tf.begin(me, "sealed-1".into(), now).await.unwrap();
    assert!(
        !tf.use_step(me, 100).await.unwrap(),
        "unconfirmed enrolments accept nothing"
    );
    assert!(
        tf.confirm(me, 100, vec!["b1".into(), "b2".into()], now)
            .await
            .unwrap()
    );
    assert!(
        !tf.confirm(me, 101, vec![], now).await.unwrap(),
        "confirms once"
    );
    assert_eq!(tf.get(me).await.unwrap().map(|e| e.confirmed), Some(true));
    assert!(
        !tf.use_step(me, 100).await.unwrap(),
        "the confirming code is spent"
    );
    assert!(tf.use_step(me, 101).await.unwrap());
    assert!(!tf.use_step(me, 101).await.unwrap(), "replay refused");
    assert!(!tf.use_step(me, 99).await.unwrap(), "older steps refused");

    assert!(tf.use_backup_code(me, "b1", now).await.unwrap());
    assert!(!tf.use_backup_code(me, "b1", now).await.unwrap());
    assert!(!tf.use_backup_code(me, "zz", now).await.unwrap());

    match tf.begin(me, "sealed-2".into(), now).await {
        Err(DbError::Domain(DomainError::Conflict { .. })) => {}
        other => panic!("a confirmed enrolment must be removed first, got {other:?}"),
    }
    tf.remove(me).await.unwrap();
    assert_eq!(tf.get(me).await.unwrap(), None);
    assert!(!tf.use_backup_code(me, "b2", now).await.unwrap());
}

fn named(email: Option<&str>, telegram: Option<i64>, username: &str) -> NewCustomer {
    NewCustomer::new(
        email.map(|e| Email::parse(e).unwrap()),
        telegram.map(|t| TelegramId::new(t).unwrap()),
        Username::parse(username).unwrap(),
        Language::En,
    )
    .unwrap()
}

async fn subscribe(db: &Db, customer: CustomerId, plan: PlanId, expires: chrono::DateTime<Utc>) {
    let now = Utc::now();
    entity::subscription::Entity::insert(entity::subscription::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        customer_id: Set(customer.as_uuid()),
        plan_id: Set(Some(plan.as_uuid())),
        status: Set("active".to_owned()),
        expires_at: Set(expires),
        traffic_used_bytes: Set(0),
        traffic_limit_bytes: Set(None),
        panel_user_id: Set(None),
        panel_short_uuid: Set(None),
        subscription_url: Set(None),
        device_limit: Set(None),
        panel_synced_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(db.conn())
    .await
    .unwrap();
}

async fn customer_search_matches_text_status_and_subscriptions(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let customers = db.customers();
    let neo = customers
        .create(named(Some("neo@matrix.io"), None, "The_One"), now)
        .await
        .unwrap();
    let trinity = customers
        .create(named(Some("trinity@matrix.io"), Some(4242), "trin"), now)
        .await
        .unwrap();
    let morpheus = customers
        .create(named(Some("m.100%@zion.io"), None, "captain"), now)
        .await
        .unwrap();
    let found = |search: CustomerSearch| {
        let db = db.clone();
        async move {
            db.customers()
                .search(&search, None, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.customer.id)
                .collect::<Vec<_>>()
        }
    };
    let text = |t: &str| CustomerSearch {
        text: Some(t.to_owned()),
        ..CustomerSearch::default()
    };

    assert_eq!(
        found(CustomerSearch::default()).await,
        [morpheus.id, trinity.id, neo.id],
        "newest first"
    );
    assert_eq!(found(text("MATRIX")).await, [trinity.id, neo.id]);
    assert_eq!(found(text("the_one")).await, [neo.id]);
    assert_eq!(found(text("4242")).await, [trinity.id]);
    assert_eq!(found(text("100%")).await, [morpheus.id]);
    assert!(
        found(text("n_o")).await.is_empty(),
        "`_` matches only itself"
    );
    assert_eq!(found(text("0%@z")).await, [morpheus.id]);
    assert!(
        found(text("n%o")).await.is_empty(),
        "`%` matches only itself"
    );

    let mut banned = trinity.clone();
    banned.status = CustomerStatus::Disabled;
    customers.update(&banned).await.unwrap();
    let status = |s| CustomerSearch {
        status: Some(s),
        ..CustomerSearch::default()
    };
    assert_eq!(found(status(CustomerStatus::Disabled)).await, [trinity.id]);
    assert_eq!(found(status(CustomerStatus::Active)).await.len(), 2);

    let plans = db.plans().list_active().await.unwrap();
    subscribe(&db, neo.id, plans[0].id, now + Duration::days(2)).await;
    subscribe(&db, trinity.id, plans[1].id, now + Duration::days(40)).await;
    let subscribed = |plan: Option<PlanId>, days: Option<i64>| CustomerSearch {
        plan_id: plan,
        expiring_before: days.map(|d| now + Duration::days(d)),
        ..CustomerSearch::default()
    };
    assert_eq!(found(subscribed(Some(plans[0].id), None)).await, [neo.id]);
    assert_eq!(found(subscribed(None, Some(7))).await, [neo.id]);
    assert_eq!(
        found(subscribed(None, Some(70))).await,
        [trinity.id, neo.id]
    );
    assert!(
        found(subscribed(Some(plans[1].id), Some(7)))
            .await
            .is_empty()
    );

    // Keyset pages.
    let first = customers
        .search(&CustomerSearch::default(), None, 2)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let rest = customers
        .search(&CustomerSearch::default(), Some(first[1].customer.id), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].customer.id, neo.id);
}

async fn soft_delete_scrubs_personal_data_once(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let customer = db
        .customers()
        .register(
            named(Some("gone@example.com"), Some(777), "leaving"),
            "hash".to_owned(),
            Some("FRIEND".to_owned()),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        db.customers()
            .record(customer.id)
            .await
            .unwrap()
            .referral_code_used
            .as_deref(),
        Some("FRIEND")
    );
    db.customers().soft_delete(customer.id, now).await.unwrap();
    let row = entity::customer::Entity::find_by_id(customer.id.as_uuid())
        .one(db.conn())
        .await
        .unwrap()
        .unwrap();
    assert!(row.deleted_at.is_some());
    assert_eq!(
        (
            row.email,
            row.telegram_id,
            row.password_hash,
            row.referral_code_used
        ),
        (None, None, None, None)
    );
    let hex = customer.id.as_uuid().simple().to_string();
    assert_eq!(row.username, format!("deleted_{}", &hex[24..]));
    for result in [
        db.customers().soft_delete(customer.id, now).await,
        db.customers().record(customer.id).await.map(|_| ()),
        db.customers().update(&customer).await,
    ] {
        assert!(
            matches!(result, Err(DbError::Domain(DomainError::NotFound { .. }))),
            "{result:?}"
        );
    }
    // The email and Telegram id are free again.
    db.customers()
        .create(named(Some("gone@example.com"), Some(777), "back"), now)
        .await
        .unwrap();
}

async fn plans_are_created_and_updated_with_their_prices(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let seeded = db.plans().list_active().await.unwrap();
    let usd = |minor| Money::new(minor, Currency::Usd).unwrap();
    let taken = Plan::new(
        PlanId::new(),
        seeded[0].tier,
        seeded[0].duration,
        vec![usd(1)],
        TrafficLimit::Unlimited,
        1,
        true,
        0,
    )
    .unwrap();
    match db.plans().create(&taken, now).await {
        Err(DbError::Domain(DomainError::Conflict { what })) => {
            assert_eq!(what, "plan with this code");
        }
        other => panic!("expected a code conflict, got {other:?}"),
    }

    let txn = db.conn().begin().await.unwrap();
    let mut plan = Plans::on(&txn).lock(seeded[0].id).await.unwrap();
    plan.set_prices(vec![usd(250), Money::new(9, Currency::Xtr).unwrap()])
        .unwrap();
    plan.device_limit = 7;
    plan.traffic_limit = TrafficLimit::Unlimited;
    plan.is_active = false;
    Plans::on(&txn).update(&plan, now).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(db.plans().get(plan.id).await.unwrap(), plan);
    assert_eq!(db.plans().list_active().await.unwrap().len(), 15);
    let all = db.plans().list_all().await.unwrap();
    assert_eq!(all.len(), 16);
    assert!(all.contains(&plan));

    let too_many_devices = Plan::new(
        plan.id,
        plan.tier,
        PlanDuration::Days30,
        vec![usd(1)],
        TrafficLimit::Unlimited,
        40_000,
        true,
        0,
    )
    .unwrap();
    assert!(matches!(
        db.plans().update(&too_many_devices, now).await,
        Err(DbError::Domain(DomainError::Invalid {
            field: "device_limit",
            ..
        }))
    ));
}

async fn an_uncommitted_change_leaves_no_trace(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let customer = db
        .customers()
        .create(named(Some("atomic@example.com"), None, "atomic"), now)
        .await
        .unwrap();
    {
        let txn = db.conn().begin().await.unwrap();
        let mut changed = Customers::on(&txn)
            .lock(customer.id)
            .await
            .unwrap()
            .customer;
        changed.status = CustomerStatus::Disabled;
        Customers::on(&txn).update(&changed).await.unwrap();
        Audit::on(&txn)
            .record(AuditEntry {
                id: uuid::Uuid::now_v7(),
                staff_id: StaffId::new(),
                action: "customer.ban".to_owned(),
                target_kind: "customer".to_owned(),
                target_id: customer.id.to_string(),
                before: None,
                after: None,
                request_id: Some("r1".to_owned()),
                created_at: now,
            })
            .await
            .unwrap();
        // Dropped without a commit, as when a later step of the request fails.
    }
    assert_eq!(db.customers().get(customer.id).await.unwrap(), customer);
    assert!(db.audit().list(None, 10).await.unwrap().is_empty());
}

on_both_backends!(broadcasts_reach_their_audience_once_and_settle_dead_claims);

async fn broadcasts_reach_their_audience_once_and_settle_dead_claims(backend: Backend) {
    use cybervpn_db::{Broadcasts, NewBroadcast, Step, Trial, Trials};
    use cybervpn_domain::{BroadcastAudience, BroadcastStatus, DeliveryOutcome, Subscription};

    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let customer = |telegram: i64| {
        let db = db.clone();
        async move {
            db.customers()
                .create(new_customer(None, Some(telegram)), now)
                .await
                .unwrap()
        }
    };
    let idle = customer(101).await;
    let paying = customer(102).await;
    let trying = customer(103).await;
    db.customers()
        .create(new_customer(Some("web@example.com"), None), now)
        .await
        .unwrap();
    let mut banned = customer(105).await;
    banned.status = CustomerStatus::Disabled;
    db.customers().update(&banned).await.unwrap();
    let paid =
        Subscription::start(paying.id, None, 30, TrafficLimit::Unlimited, None, now).unwrap();
    db.subscriptions().create(&paid).await.unwrap();
    let trial =
        Subscription::start(trying.id, None, 3, TrafficLimit::Unlimited, None, now).unwrap();
    db.subscriptions().create(&trial).await.unwrap();
    Trials::on(db.conn())
        .record(&Trial {
            customer_id: trying.id,
            telegram_id: trying.telegram_id,
            subscription_id: trial.id,
            activated_at: now,
            expires_at: trial.expires_at,
        })
        .await
        .unwrap();

    let repo = Broadcasts::on(db.conn());
    for (audience, size) in [
        (BroadcastAudience::All, 3),
        (BroadcastAudience::Active, 1),
        (BroadcastAudience::Trial, 1),
    ] {
        assert_eq!(
            repo.audience_size(audience, now).await.unwrap(),
            size,
            "{audience}"
        );
    }
    let draft = repo
        .create(
            NewBroadcast {
                created_by: StaffId::new(),
                admin_chat_id: 1,
                audience: BroadcastAudience::All,
                text: "hello".into(),
                photo_file_id: None,
            },
            now,
        )
        .await
        .unwrap();
    let started = repo.start(draft.id, now).await.unwrap();
    assert_eq!(
        (started.status, started.total),
        (BroadcastStatus::Sending, 3)
    );
    assert!(repo.start(draft.id, now).await.is_err(), "confirmed twice");

    // Run A claims the first recipient and dies; run B delivers the rest.
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let Step::Send(lost) = repo.advance(draft.id, a, None, true, now).await.unwrap() else {
        panic!("nothing to send")
    };
    assert_eq!(lost.customer_id, idle.id, "recipients go in a stable order");
    let mut delivered = Vec::new();
    let mut report = None;
    loop {
        match repo
            .advance(draft.id, b, report.take(), true, now)
            .await
            .unwrap()
        {
            Step::Send(next) => {
                delivered.push(next.telegram_id);
                let outcome = if next.telegram_id == 103 {
                    DeliveryOutcome::Blocked
                } else {
                    DeliveryOutcome::Sent
                };
                report = Some((next.customer_id, outcome, None));
            }
            Step::Wait => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered, vec![102, 103]);
    // A's claim is still young: the broadcast waits for it; once it is stale it is settled, not resent.
    let later = now + cybervpn_db::CLAIM_TIMEOUT + Duration::seconds(1);
    let Step::Finished { broadcast, first } =
        repo.advance(draft.id, b, None, true, later).await.unwrap()
    else {
        panic!("not finished")
    };
    assert!(first);
    assert_eq!(
        (
            broadcast.status,
            broadcast.sent,
            broadcast.blocked,
            broadcast.unconfirmed
        ),
        (BroadcastStatus::Done, 1, 1, 1)
    );
    // A late report of the dead run counts nothing; finishing again is not "first".
    let step = repo
        .advance(
            draft.id,
            a,
            Some((lost.customer_id, DeliveryOutcome::Sent, None)),
            true,
            later,
        )
        .await
        .unwrap();
    let Step::Finished { broadcast, first } = step else {
        panic!("not finished")
    };
    assert!(!first);
    assert_eq!(broadcast.sent, 1);
    assert!(!repo.cancel(draft.id, later).await.unwrap(), "already over");
}

on_both_backends!(analytics_migration_backfills_conversions_and_runs_again);

/// Migration 013 fills `trials.converted_at` for trials whose customer paid after them (and only those), and
/// applies again cleanly after an interruption that left its column and indexes behind.
async fn analytics_migration_backfills_conversions_and_runs_again(backend: Backend) {
    use cybervpn_db::{ConnectionTrait, Trial, Trials};
    use cybervpn_domain::{Subscription, TrafficLimit};
    use cybervpn_migrations::{Migrator, MigratorTrait};

    let (_guard, db) = open(backend).await;
    let at = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    };
    let mut trial_of = Vec::new();
    for (n, (activated, paid)) in [
        // Paid twice after the trial: converted at the first.
        (
            "2025-01-06T08:00:00Z",
            vec!["2025-01-20T10:00:00Z", "2025-02-20T10:00:00Z"],
        ),
        // Paid only before the trial.
        ("2025-01-07T08:00:00Z", vec!["2024-12-20T10:00:00Z"]),
        // Never paid.
        ("2025-01-08T08:00:00Z", vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        let customer = db
            .customers()
            .create(
                new_customer(Some(&format!("trial{n}@example.com")), None),
                at("2025-01-01T00:00:00Z"),
            )
            .await
            .unwrap();
        let subscription = Subscription::start(
            customer.id,
            None,
            3,
            TrafficLimit::Unlimited,
            None,
            at(activated),
        )
        .unwrap();
        db.subscriptions().create(&subscription).await.unwrap();
        Trials::on(db.conn())
            .record(&Trial {
                customer_id: customer.id,
                telegram_id: None,
                subscription_id: subscription.id,
                activated_at: at(activated),
                expires_at: subscription.expires_at,
            })
            .await
            .unwrap();
        for paid in paid {
            db.payments()
                .create(Payment {
                    id: PaymentId::new(),
                    customer_id: customer.id,
                    plan_id: None,
                    amount: Money::new(499, Currency::Usd).unwrap(),
                    status: PaymentStatus::Completed,
                    provider: PaymentProvider::Stripe,
                    provider_payment_id: None,
                    days: 30,
                    invoice_url: None,
                    expires_at: None,
                    completed_at: Some(at(paid)),
                    review_reason: None,
                    promo_code_id: None,
                    refunded_at: None,
                    refund_reason: None,
                    created_at: at(paid),
                    updated_at: at(paid),
                })
                .await
                .unwrap();
        }
        trial_of.push(customer.id);
    }
    let converted = || async {
        let mut rows = entity::trial::Entity::find().all(db.conn()).await.unwrap();
        rows.sort_by_key(|t| t.activated_at);
        rows.into_iter().map(|t| t.converted_at).collect::<Vec<_>>()
    };
    let expected = vec![Some(at("2025-01-20T10:00:00Z")), None, None];

    // Rows written before the migration: it fills them in (the migrations after it are rolled back first).
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let from_analytics = names.len()
        - names
            .iter()
            .position(|name| name == "m20261126_000013_analytics")
            .unwrap();
    Migrator::down(db.conn(), Some(u32::try_from(from_analytics).unwrap()))
        .await
        .unwrap();
    Migrator::up(db.conn(), None).await.unwrap();
    assert_eq!(converted().await, expected);

    // Interrupted after its work but before it was recorded: it runs again over its own column and indexes.
    db.conn()
        .execute_unprepared(
            "DELETE FROM seaql_migrations WHERE version = 'm20261126_000013_analytics'",
        )
        .await
        .unwrap();
    assert_eq!(db.pending_migrations().await.unwrap().len(), 1);
    Migrator::up(db.conn(), None).await.unwrap();
    assert!(db.pending_migrations().await.unwrap().is_empty());
    assert_eq!(converted().await, expected);

    // From now on the completion path keeps it: a later payment never moves it, the first one sets it.
    let trials = Trials::on(db.conn());
    assert!(
        !trials
            .mark_converted(trial_of[0], at("2025-03-01T00:00:00Z"))
            .await
            .unwrap()
    );
    assert!(
        !trials
            .mark_converted(trial_of[2], at("2025-01-08T07:59:59Z"))
            .await
            .unwrap()
    );
    assert!(
        trials
            .mark_converted(trial_of[2], at("2025-01-09T00:00:00Z"))
            .await
            .unwrap()
    );
    assert!(
        !trials
            .mark_converted(trial_of[2], at("2025-01-10T00:00:00Z"))
            .await
            .unwrap()
    );
    assert_eq!(
        converted().await,
        vec![expected[0], None, Some(at("2025-01-09T00:00:00Z"))]
    );
}
