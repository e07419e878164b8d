-- The hash chain no longer serialises writers. 0001 extended the chain in a BEFORE INSERT trigger
-- under an advisory lock held to commit, so every audited transaction in every replica waited for
-- the previous one's commit (and its WAL flush). Now rows are inserted unsealed and
-- audit_log_seal() links them into one chain in sealing order, a batch at a time.
DROP TRIGGER audit_log_chain ON audit_log;
--> statement-breakpoint
DROP FUNCTION audit_log_chain();
--> statement-breakpoint
CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- The one change allowed: audit_log_seal() filling in the chain columns of an unsealed row,
  -- every other column unchanged.
  IF TG_OP = 'UPDATE' THEN
    IF current_setting('audit_log.sealing', true) = 'on' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND (NEW.id, NEW.at, NEW.actor, NEW.action, NEW.entity_type, NEW.entity_id, NEW.request_id, NEW.data)
           IS NOT DISTINCT FROM (OLD.id, OLD.at, OLD.actor, OLD.action, OLD.entity_type, OLD.entity_id, OLD.request_id, OLD.data) THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
--> statement-breakpoint
CREATE FUNCTION audit_log_seal(max_rows integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
  SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit_log a WHERE a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1;
  last_seq := coalesce(last_seq, 0);
  last_hash := coalesce(last_hash, '');
  FOR r IN SELECT * FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT max_rows LOOP
    last_seq := last_seq + 1;
    next_hash := audit_log_row_hash(last_hash, last_seq, r.at, r.actor, r.action, r.entity_type, r.entity_id, r.request_id, r.data);
    UPDATE audit_log SET seq = last_seq, prev_hash = last_hash, hash = next_hash WHERE id = r.id;
    last_hash := next_hash;
    sealed := sealed + 1;
  END LOOP;
  PERFORM set_config('audit_log.sealing', 'off', true);
  RETURN sealed;
END
$$;
