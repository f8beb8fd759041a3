//! The payments sweep: closes unpaid payments past their expiry and credits CryptoBot invoices whose webhook
//! never arrived (webhooks are an accelerator; the gateway's own list is the truth).

use chrono::Utc;
use cybervpn_commerce::{Completion, PaidNotice, complete_payment, expire_unpaid};
use cybervpn_domain::{PaymentId, PaymentProvider};
use cybervpn_jobs::{JobError, JobResultExt};
use cybervpn_payments::cryptobot::{GetInvoices, InvoiceStatus, InvoiceStatusFilter};

use crate::Services;

/// Pending CryptoBot payments checked per run.
const BATCH: u64 = 100;

/// Runs one sweep.
pub(crate) async fn sweep(services: &Services) -> Result<(), JobError> {
    let now = Utc::now();
    let expired = expire_unpaid(&services.db, now)
        .await
        .or_retry("expire unpaid payments")?;
    if expired > 0 {
        tracing::info!(expired, "unpaid payments closed");
    }
    let Some(cryptobot) = &services.cryptobot else {
        return Ok(());
    };
    let pending = services
        .db
        .payments()
        .pending_with_reference(PaymentProvider::CryptoBot, BATCH)
        .await
        .or_retry("list pending cryptobot payments")?;
    let invoice_ids: Vec<i64> = pending
        .iter()
        .filter_map(|p| p.provider_payment_id.as_deref()?.parse().ok())
        .collect();
    if invoice_ids.is_empty() {
        return Ok(());
    }
    let query = GetInvoices {
        count: u32::try_from(invoice_ids.len()).unwrap_or(u32::MAX),
        invoice_ids,
        status: Some(InvoiceStatusFilter::Paid),
        ..GetInvoices::default()
    };
    let invoices = cryptobot
        .get_invoices(&query)
        .await
        .or_retry("cryptobot getInvoices")?;
    for invoice in invoices
        .into_iter()
        .filter(|i| i.status == InvoiceStatus::Paid)
    {
        let Some(payment_id) = invoice
            .payload
            .as_deref()
            .and_then(|p| p.parse().ok())
            .map(PaymentId::from_uuid)
        else {
            continue;
        };
        let Some(paid) = invoice.amount_money() else {
            tracing::warn!(
                invoice = invoice.invoice_id,
                "paid invoice without a fiat amount"
            );
            continue;
        };
        let notice = PaidNotice {
            payment_id,
            provider: PaymentProvider::CryptoBot,
            provider_payment_id: invoice.invoice_id.to_string(),
            paid,
        };
        let outcome = complete_payment(&services.db, &notice, now)
            .await
            .or_retry("complete payment")?;
        if matches!(outcome, Completion::Credited(_)) {
            tracing::info!(payment = %payment_id.as_uuid(), "credited a paid invoice whose webhook was missed");
        }
    }
    Ok(())
}
