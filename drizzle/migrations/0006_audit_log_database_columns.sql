-- The audit log's time and chain columns are the database's (issue #17 item 3). With the roles of
-- drizzle/roles.sql, payment_app may insert only the descriptive columns (drizzle/privileges.sql);
-- this trigger holds the same for every role, the owner and PGlite's superuser included: an insert
-- that brings its own at, seq, prev_hash or hash is refused, so no row is backdated or slipped into
-- the chain. `at` is now() (the default), and audit_log_seal() alone writes seq, prev_hash and hash.
CREATE FUNCTION audit_log_refuse_forged_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.seq IS NOT NULL OR NEW.prev_hash IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.at IS DISTINCT FROM now() THEN
    RAISE EXCEPTION 'audit_log: at, seq, prev_hash and hash are set by the database, not by an insert'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE TRIGGER audit_log_database_columns BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_forged_columns();
--> statement-breakpoint
-- The sealer runs with the rights of its owner (the role that runs the migrations, payment_owner),
-- so payment_app, which may not UPDATE the audit log, still gets its rows sealed, and only this way.
-- A SECURITY DEFINER function must not let its caller decide what its names mean: pg_catalog
-- first, pg_temp last, every object of the service named with its schema. Unchanged otherwise.
CREATE OR REPLACE FUNCTION audit_log_seal(max_rows integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  last_seq bigint;
  last_hash text;
  next_hash text;
  r record;
  sealed integer := 0;
BEGIN
  -- One sealer at a time across replicas; a caller that finds it busy has nothing to do.
  IF NOT pg_try_advisory_xact_lock(727370001) THEN
    RETURN 0;
  END IF;
  PERFORM set_config('audit_log.sealing', 'on', true);
  SELECT a.seq, a.hash INTO last_seq, last_hash FROM public.audit_log a WHERE a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1;
  last_seq := coalesce(last_seq, 0);
  last_hash := coalesce(last_hash, '');
  FOR r IN SELECT * FROM public.audit_log WHERE seq IS NULL ORDER BY id LIMIT max_rows LOOP
    last_seq := last_seq + 1;
    next_hash := public.audit_log_row_hash(last_hash, last_seq, r.at, r.actor, r.action, r.entity_type, r.entity_id, r.request_id, r.data);
    UPDATE public.audit_log SET seq = last_seq, prev_hash = last_hash, hash = next_hash WHERE id = r.id;
    last_hash := next_hash;
    sealed := sealed + 1;
  END LOOP;
  PERFORM set_config('audit_log.sealing', 'off', true);
  RETURN sealed;
END
$$;
--> statement-breakpoint
-- Sealing is the runtime role's to call (drizzle/privileges.sql grants it), not everyone's.
REVOKE ALL ON FUNCTION audit_log_seal(integer) FROM PUBLIC;
