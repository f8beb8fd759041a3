#!/usr/bin/env python3
"""Signed CryptoBot `invoice_paid` deliveries for the webhook ingest benchmark (scripts/bench.sh).

Reads pending CryptoBot payments from stdin, one per line, tab-separated as `psql -At -F '<tab>'` prints them:

    payment id (uuid)    invoice id    amount_minor    currency (USD or RUB)    invoice url

and writes one line per payment to stdout: the `crypto-pay-api-signature`, a tab, then the compact JSON body of
the `invoice_paid` update Crypto Pay would send once that invoice is paid. The signature is what
`cybervpn_payments::cryptobot::verify_webhook` checks: lowercase hex HMAC-SHA256 of the raw body, keyed with the
32 raw bytes of SHA-256(app token). The app token comes from the environment, BENCH_CRYPTOBOT_TOKEN.

The body has every field a paid fiat invoice carries (as crates/payments/src/fake/cryptobot.rs builds them), so
the api parses a body of the real size and shape; `amount` is the payment's exact price, so each delivery takes
the crediting path and none is set aside for review.
"""

import hashlib
import hmac
import json
import os
import sys
from datetime import datetime, timedelta, timezone

MINOR_DIGITS = {"USD": 2, "RUB": 2}


def major(amount_minor: int, currency: str) -> str:
    """499 USD → "4.99": the decimal string CryptoBot sends for a fiat amount."""
    digits = MINOR_DIGITS[currency]
    whole, fraction = divmod(amount_minor, 10**digits)
    return f"{whole}.{fraction:0{digits}d}"


def timestamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def main() -> int:
    token = os.environ.get("BENCH_CRYPTOBOT_TOKEN", "")
    if not token:
        print("BENCH_CRYPTOBOT_TOKEN is not set", file=sys.stderr)
        return 2
    key = hashlib.sha256(token.encode()).digest()
    now = datetime.now(timezone.utc)
    created = timestamp(now - timedelta(minutes=5))
    paid = timestamp(now - timedelta(minutes=1))
    out = sys.stdout
    count = 0
    for update_id, line in enumerate(sys.stdin, start=1):
        payment_id, invoice_id, amount_minor, currency, url = line.rstrip("\n").split("\t")
        amount = major(int(amount_minor), currency)
        invoice_hash = url.rsplit("=", 1)[-1]
        update = {
            "update_id": update_id,
            "update_type": "invoice_paid",
            "request_date": paid,
            "payload": {
                "invoice_id": int(invoice_id),
                "hash": invoice_hash,
                "currency_type": "fiat",
                "fiat": currency,
                "amount": amount,
                "accepted_assets": ["USDT", "TON", "BTC", "ETH", "LTC", "BNB", "TRX", "USDC"],
                "paid_asset": "USDT",
                "paid_amount": amount,
                "paid_fiat_rate": "1.00000000",
                "paid_usd_rate": "1.00000000",
                "fee_asset": "USDT",
                "fee_amount": "0",
                "pay_url": url,
                "bot_invoice_url": url,
                "mini_app_invoice_url": f"https://t.me/CryptoBot/app?startapp=invoice-{invoice_hash}",
                "web_app_invoice_url": f"https://app.send.tg/invoices/{invoice_hash}",
                "description": "CyberVPN: 30 days",
                "status": "paid",
                "created_at": created,
                "allow_comments": True,
                "allow_anonymous": True,
                "paid_anonymously": False,
                "paid_at": paid,
                "payload": payment_id,
            },
        }
        body = json.dumps(update, separators=(",", ":")).encode()
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        out.write(f"{signature}\t{body.decode()}\n")
        count += 1
    if count == 0:
        print("no pending payments on stdin", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
