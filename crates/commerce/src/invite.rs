//! Invites on the money path: a credited purchase earns codes per its tier's rule (and promotions) and pays the
//! inviter's bonus on the friend's first payment; a refund withdraws both; redeeming a code grants the friend
//! free days. Each runs in one transaction with its panel update and notices in the outbox.

use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_db::{
    Customers, DatabaseTransaction, Db, DbError, Invites, NewInvite, TransactionTrait,
};
use cybervpn_domain::{
    CustomerId, DomainError, Invite, InviteRefusal, InviteSource, NoticeKind, Payment, Plan,
    PlanTier, Subscription,
    invite::{INVITE_CODE_LEN, codes_for_purchase, new_invite_code, normalize_invite_code},
};
use cybervpn_jobs::outbox;

use crate::grant;

/// Why a code was not redeemed.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// The code may not be redeemed by this customer.
    #[error(transparent)]
    Refused(#[from] InviteRefusal),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A redeemed code and the subscription it extended or started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The code, now used.
    pub invite: Invite,
    /// The customer's subscription after the free days.
    pub subscription: Subscription,
}

/// Redeems `typed` for `customer`: once per code, one free grant per customer, never the customer's own code.
pub async fn redeem_invite(
    db: &Db,
    customer: CustomerId,
    typed: &str,
    now: DateTime<Utc>,
) -> Result<Redeemed, RedeemError> {
    let code = normalize_invite_code(typed);
    if code.len() != INVITE_CODE_LEN {
        return Err(InviteRefusal::Unknown.into());
    }
    let txn = db.conn().begin().await.map_err(DbError::from)?;
    // One customer's redemptions run one at a time; the invite's row lock serialises redemptions of one code.
    Customers::on(&txn).lock(customer).await?;
    let invites = Invites::on(&txn);
    let invite = invites
        .lock_by_code(&code)
        .await?
        .ok_or(InviteRefusal::Unknown)?;
    if let Some(refusal) = invite.refusal(customer, now) {
        return Err(refusal.into());
    }
    if invites.redeemed_by(customer).await?.is_some() {
        return Err(InviteRefusal::AlreadyGranted.into());
    }
    match invites.redeem(invite.id, customer, now).await {
        Ok(true) => {}
        Ok(false) => return Err(InviteRefusal::Used.into()),
        Err(DbError::Domain(DomainError::Conflict { .. })) => {
            return Err(InviteRefusal::AlreadyGranted.into());
        }
        Err(err) => return Err(err.into()),
    }
    let subscription = grant::grant_days(&txn, customer, invite.free_days, now).await?;
    outbox::notify_customer_in(
        &txn,
        &format!("invite_redeemed:{}", customer.as_uuid()),
        customer,
        NoticeKind::InviteRedeemed,
        &[
            ("days", invite.free_days.to_string()),
            ("until", grant::until(&subscription)),
        ],
        now,
    )
    .await?;
    txn.commit().await.map_err(|err| match DbError::from(err) {
        DbError::Domain(DomainError::Conflict { .. }) => {
            RedeemError::Refused(InviteRefusal::AlreadyGranted)
        }
        other => RedeemError::Db(other),
    })?;
    tracing::info!(invite = %invite.id, days = invite.free_days, "invite redeemed");
    let invite = Invite {
        redeemed_by: Some(customer),
        redeemed_at: Some(now),
        ..invite
    };
    Ok(Redeemed {
        invite,
        subscription,
    })
}

/// In the transaction crediting `payment`: pays the inviter's bonus if this is the friend's first payment since
/// redeeming, and issues the codes the purchase earns.
pub(crate) async fn on_payment_credited(
    txn: &DatabaseTransaction,
    payment: &Payment,
    plan: Option<&Plan>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    reward_inviter(txn, payment, now).await?;
    match plan {
        Some(plan) => issue_for_purchase(txn, payment, plan.tier, now).await,
        None => Ok(()),
    }
}

/// In the transaction refunding `payment`: withdraws its unused codes and takes back the inviter bonus it paid.
pub(crate) async fn on_payment_refunded(
    txn: &DatabaseTransaction,
    payment: &Payment,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let invites = Invites::on(txn);
    invites
        .revoke_unused_of_payment(payment.id.as_uuid(), now)
        .await?;
    let Some(invite) = invites.take_back_bonus(payment.id.as_uuid()).await? else {
        return Ok(());
    };
    let Some(owner) = invite.owner_id else {
        return Ok(());
    };
    if let Some(subscription) = grant::take_back_days(txn, owner, invite.bonus_days, now).await? {
        grant::provision(txn, &subscription, now).await?;
    }
    Ok(())
}

async fn reward_inviter(
    txn: &DatabaseTransaction,
    payment: &Payment,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let invites = Invites::on(txn);
    let Some(invite) = invites.redeemed_by(payment.customer_id).await? else {
        return Ok(());
    };
    let Some(owner) = invite.owner_id else {
        return Ok(());
    };
    if invite.bonus_paid_at.is_some() || invite.bonus_days == 0 {
        return Ok(());
    }
    match Customers::on(txn).lock(owner).await {
        Ok(_) => {}
        // The inviter's account was deleted: nobody to reward.
        Err(DbError::Domain(DomainError::NotFound { .. })) => return Ok(()),
        Err(err) => return Err(err),
    }
    if !invites
        .mark_bonus_paid(invite.id, payment.id.as_uuid(), now)
        .await?
    {
        return Ok(());
    }
    let subscription = grant::grant_days(txn, owner, invite.bonus_days, now).await?;
    outbox::notify_customer_in(
        txn,
        &format!("invite_bonus:{}:{}", invite.id, payment.id.as_uuid()),
        owner,
        NoticeKind::InviteBonus,
        &[
            ("days", invite.bonus_days.to_string()),
            ("until", grant::until(&subscription)),
        ],
        now,
    )
    .await?;
    tracing::info!(invite = %invite.id, days = invite.bonus_days, "inviter rewarded");
    Ok(())
}

async fn issue_for_purchase(
    txn: &DatabaseTransaction,
    payment: &Payment,
    tier: PlanTier,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let invites = Invites::on(txn);
    let Some(rule) = invites.rule(tier).await? else {
        return Ok(());
    };
    let count = codes_for_purchase(&rule, &invites.promotions(now).await?, now);
    if count == 0 {
        return Ok(());
    }
    let expires_at = now + TimeDelta::days(i64::from(rule.valid_days));
    // 60 random bits per code: a clash fails this transaction and the completion is retried with new codes.
    let codes: Vec<NewInvite> = (0..count)
        .map(|_| NewInvite {
            code: new_invite_code(),
            owner_id: Some(payment.customer_id),
            source: InviteSource::Purchase,
            payment_id: Some(payment.id.as_uuid()),
            issued_by: None,
            note: None,
            free_days: rule.free_days,
            bonus_days: rule.bonus_days,
            expires_at,
        })
        .collect();
    invites.issue(&codes, now).await?;
    outbox::notify_customer_in(
        txn,
        &format!("invites_issued:{}", payment.id.as_uuid()),
        payment.customer_id,
        NoticeKind::InvitesIssued,
        &[
            ("count", count.to_string()),
            ("days", rule.free_days.to_string()),
        ],
        now,
    )
    .await?;
    Ok(())
}
