-- Two years of a VPN business for the analytics benchmark (scripts/bench.sh, BENCH_ONLY=analytics), on a
-- migrated, empty database: :customers customers and :payments payments, growing over time (sign-ups and
-- payments are denser lately: the share of them before a point of the two years is the square of how far
-- into the two years it lies).
--
--   customers      1 % of them deleted since
--   trials         40 % of customers, within a day of signing up, each with its three-day subscription;
--                  half of them bought a plan on it (the trial subscription got the plan and more days)
--   subscriptions  the trial ones, plus one bought without a trial by 20 % of customers
--   payments       each by a customer who had signed up by then, at a plan's price in one of the plan's
--                  currencies (USD through Stripe or CryptoBot, RUB through YooKassa, XTR through Telegram
--                  Stars): 62 % completed, 3 % refunded up to two weeks later, 15 % expired, 19 % failed,
--                  1 % still pending (opened in the last hour)
--
-- Deterministic for a given size (setseed). Column lists follow migrations 001-013.
\set ON_ERROR_STOP 1
SELECT setseed(0.42);
BEGIN;
CREATE TEMP TABLE seed_customers ON COMMIT DROP AS
  SELECT i AS n, gen_random_uuid() AS id,
         now() - interval '730 days' + interval '730 days' * sqrt(i::float8 / :customers) - interval '1 hour' AS created_at
  FROM generate_series(1, :customers) AS i;
INSERT INTO customers (id, telegram_id, username, status, language, created_at, updated_at, deleted_at)
  SELECT id, 7000000000 + n, 'bench_' || n, 'active', 'en', created_at, created_at,
         CASE WHEN n % 100 = 0 THEN created_at + (now() - created_at) * random() END
  FROM seed_customers;

CREATE TEMP TABLE seed_plans ON COMMIT DROP AS
  SELECT row_number() OVER (ORDER BY code) - 1 AS k, id, duration_days FROM plans;
CREATE TEMP TABLE seed_trials ON COMMIT DROP AS
  SELECT c.n, c.id AS customer_id, gen_random_uuid() AS subscription_id,
         least(c.created_at + interval '1 day' * random(), now() - interval '1 minute') AS activated_at
  FROM seed_customers c WHERE c.n % 5 IN (1, 2);
INSERT INTO subscriptions (id, customer_id, plan_id, status, expires_at, traffic_used_bytes, created_at, updated_at)
  SELECT t.subscription_id, t.customer_id, p.id, 'active',
         t.activated_at + interval '3 days' + CASE WHEN p.id IS NULL THEN interval '0' ELSE interval '1 day' * p.duration_days END,
         0, t.activated_at, t.activated_at
  FROM seed_trials t LEFT JOIN seed_plans p ON t.n % 2 = 0 AND p.k = (t.n / 7) % 16;
INSERT INTO trials (id, customer_id, telegram_id, subscription_id, activated_at, expires_at)
  SELECT gen_random_uuid(), customer_id, 7000000000 + n, subscription_id, activated_at, activated_at + interval '3 days'
  FROM seed_trials;
INSERT INTO subscriptions (id, customer_id, plan_id, status, expires_at, traffic_used_bytes, created_at, updated_at)
  SELECT gen_random_uuid(), c.id, p.id, 'active', c.created_at + interval '1 day' * p.duration_days * (1 + (c.n / 11) % 4),
         0, c.created_at, c.created_at
  FROM seed_customers c JOIN seed_plans p ON p.k = (c.n / 7) % 16
  WHERE c.n % 5 = 3;
UPDATE subscriptions SET status = 'expired' WHERE expires_at <= now();

CREATE TEMP TABLE seed_prices ON COMMIT DROP AS
  SELECT row_number() OVER (ORDER BY p.code, pp.currency) - 1 AS k, p.id AS plan_id, p.duration_days,
         pp.currency, pp.amount_minor
  FROM plans p JOIN plan_prices pp ON pp.plan_id = p.id;
INSERT INTO payments (id, customer_id, plan_id, amount_minor, currency, status, provider, days,
                      created_at, updated_at, completed_at, refunded_at)
  SELECT gen_random_uuid(), c.id, pr.plan_id, pr.amount_minor, pr.currency, y.status,
         CASE pr.currency WHEN 'RUB' THEN 'yookassa' WHEN 'XTR' THEN 'telegram_stars'
                          ELSE CASE WHEN y.i % 2 = 0 THEN 'stripe' ELSE 'cryptobot' END END,
         pr.duration_days, y.created_at, y.created_at,
         CASE WHEN y.status IN ('completed', 'refunded') THEN y.created_at + interval '2 minutes' END,
         CASE WHEN y.status = 'refunded'
              THEN least(y.created_at + interval '1 day' * (1 + y.i % 13), now() - interval '1 second') END
  FROM (SELECT s.i, s.status, s.u,
               CASE WHEN s.status = 'pending' THEN now() - interval '1 hour' * random()
                    ELSE now() - interval '730 days' + interval '730 days' * sqrt(s.u) - interval '10 minutes' END AS created_at,
               -- A customer who had signed up by then (ranks are in sign-up order).
               1 + floor(random() * s.u * :customers)::bigint AS cn,
               s.i % (SELECT count(*) FROM seed_prices) AS pk
        FROM (SELECT i, random() AS u,
                     CASE WHEN i % 100 < 62 THEN 'completed' WHEN i % 100 < 65 THEN 'refunded'
                          WHEN i % 100 < 80 THEN 'expired' WHEN i % 100 < 99 THEN 'failed' ELSE 'pending' END AS status
              FROM generate_series(1, :payments) AS i) AS s) AS y
  JOIN seed_customers c ON c.n = least(y.cn, :customers)
  JOIN seed_prices pr ON pr.k = y.pk;

-- What the payment completion path records on the trial: the first payment credited after it started.
UPDATE trials t SET converted_at = f.first_paid
  FROM (SELECT t2.customer_id, min(p.completed_at) AS first_paid
        FROM trials t2 JOIN payments p ON p.customer_id = t2.customer_id AND p.completed_at >= t2.activated_at
        GROUP BY t2.customer_id) AS f
  WHERE f.customer_id = t.customer_id;
COMMIT;
-- Sets the visibility map (what lets the reports' scans stay in their indexes), as autovacuum would in time.
VACUUM ANALYZE customers;
VACUUM ANALYZE trials;
VACUUM ANALYZE subscriptions;
VACUUM ANALYZE payments;
