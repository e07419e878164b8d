-- The service's database roles, applied by a superuser connected to the service's database, once
-- before the first `migrate up` (and again after changing this file; it is idempotent):
--
--   psql -h "$DB_HOST" -U postgres -d payments -v ON_ERROR_STOP=1 \
--     -v owner_password="$OWNER_PASSWORD" -v app_password="$APP_PASSWORD" \
--     -v analytics_password="$ANALYTICS_PASSWORD" -f drizzle/roles.sql
--
--   payment_owner      runs the migrations (MIGRATION_DATABASE_URL) and owns every object
--   payment_app        the service at run time: reads and writes its tables, appends to the audit
--                      log (descriptive columns only), owns nothing, grants nothing
--   payment_analytics  reads everything, writes nothing (every session read-only)
--
-- Passwords are psql variables, so nobody edits this file (openssl rand -hex 32 gives ones that need
-- no escaping in a URL). On a database migrated earlier by another role, the objects are handed to
-- payment_owner, so that payment_app is left owning nothing.
\set ON_ERROR_STOP on

\if :{?owner_password}
\else
  \warn 'roles.sql: give -v owner_password=… (and app_password, analytics_password)'
  SELECT 1/0 AS "owner_password is missing";
\endif
\if :{?app_password}
\else
  \warn 'roles.sql: give -v app_password=…'
  SELECT 1/0 AS "app_password is missing";
\endif
\if :{?analytics_password}
\else
  \warn 'roles.sql: give -v analytics_password=…'
  SELECT 1/0 AS "analytics_password is missing";
\endif
SELECT length(:'owner_password') >= 12 AND length(:'app_password') >= 12 AND length(:'analytics_password') >= 12 AS passwords_long_enough \gset
\if :passwords_long_enough
\else
  \warn 'roles.sql: each password needs at least 12 characters (openssl rand -hex 32)'
  SELECT 1/0 AS "a password is too short";
\endif

-- The roles: logins with nothing beyond LOGIN, members of nothing.
SELECT format('CREATE ROLE %I', name) FROM unnest(ARRAY['payment_owner', 'payment_app', 'payment_analytics']) AS name
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE payment_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'owner_password';
ALTER ROLE payment_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';
ALTER ROLE payment_analytics LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'analytics_password';
ALTER ROLE payment_analytics SET default_transaction_read_only = on;

-- This database: the owner may create schemas (Drizzle's journal is the schema "drizzle") and owns
-- "public"; nobody else creates anything in it.
SELECT format('GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %I TO payment_owner', current_database()) \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO payment_app, payment_analytics', current_database()) \gexec
ALTER SCHEMA public OWNER TO payment_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO payment_app, payment_analytics;

-- Objects made before these roles existed (an earlier `migrate up` as another role) go to the
-- owner: tables (their serial sequences follow), other sequences, views, functions, schema drizzle.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT n.nspname FROM pg_namespace n WHERE n.nspname = 'drizzle' AND pg_get_userbyid(n.nspowner) <> 'payment_owner' LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO payment_owner', r.nspname);
  END LOOP;
  FOR r IN
    SELECT c.oid::regclass AS name, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('public', 'drizzle') AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND pg_get_userbyid(c.relowner) <> 'payment_owner'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
    ORDER BY c.relkind = 'S'
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO payment_owner',
      CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.name);
  END LOOP;
  FOR r IN
    SELECT p.oid::regprocedure AS name, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('public', 'drizzle') AND pg_get_userbyid(p.proowner) <> 'payment_owner'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO payment_owner', CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, r.name);
  END LOOP;
END
$$;

-- Tables that exist now ...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO payment_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO payment_app;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO payment_analytics;
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'drizzle') THEN
    -- /ready compares the applied migrations with the build's.
    GRANT USAGE ON SCHEMA drizzle TO payment_app, payment_analytics;
    GRANT SELECT ON ALL TABLES IN SCHEMA drizzle TO payment_app, payment_analytics;
  END IF;
END
$$;

-- ... and every one a later migration adds (made by payment_owner), without running this again.
ALTER DEFAULT PRIVILEGES FOR ROLE payment_owner GRANT USAGE ON SCHEMAS TO payment_app, payment_analytics;
ALTER DEFAULT PRIVILEGES FOR ROLE payment_owner GRANT SELECT ON TABLES TO payment_app, payment_analytics;
ALTER DEFAULT PRIVILEGES FOR ROLE payment_owner IN SCHEMA public GRANT INSERT, UPDATE, DELETE ON TABLES TO payment_app;
ALTER DEFAULT PRIVILEGES FOR ROLE payment_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO payment_app;

-- What default privileges cannot say (the audit log is append-only for payment_app, and it seals
-- through audit_log_seal()); `migrate up` applies the same file after every migration.
\ir privileges.sql
