-- Database roles, applied once by an operator (superuser) after `migrate up`:
--   psql "$ADMIN_DATABASE_URL" -f drizzle/roles.sql
-- then set their passwords: ALTER ROLE payment_app PASSWORD '…'; ALTER ROLE payment_analytics PASSWORD '…';
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'payment_app') THEN
    CREATE ROLE payment_app LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'payment_analytics') THEN
    CREATE ROLE payment_analytics LOGIN;
  END IF;
END
$$;

-- The application reads and writes its tables, but may only append to the audit log.
GRANT USAGE ON SCHEMA public TO payment_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO payment_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO payment_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM payment_app;
GRANT USAGE ON SCHEMA drizzle TO payment_app;
GRANT SELECT ON ALL TABLES IN SCHEMA drizzle TO payment_app;

-- Analytics reads everything and writes nothing (customer details are ciphertext at rest).
GRANT USAGE ON SCHEMA public TO payment_analytics;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO payment_analytics;
ALTER ROLE payment_analytics SET default_transaction_read_only = on;
