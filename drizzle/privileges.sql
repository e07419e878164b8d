-- The runtime roles' rights on what the migrations made that default privileges cannot express
-- (drizzle/roles.sql creates the roles and their default privileges). Applied by `migrate up` after
-- every migration, as the role that owns the tables, and by roles.sql itself; each part applies
-- only when its role and object exist, so it also runs where there are no such roles (PGlite).
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'payment_app') THEN
    IF to_regclass('public.audit_log') IS NOT NULL THEN
      -- payment_app appends to the audit log and reads it; it never changes or removes a row, and
      -- at, seq, prev_hash and hash are the database's (now() and audit_log_seal()).
      REVOKE ALL ON TABLE public.audit_log FROM payment_app;
      GRANT SELECT ON TABLE public.audit_log TO payment_app;
      GRANT INSERT (actor, action, entity_type, entity_id, request_id, data) ON TABLE public.audit_log TO payment_app;
    END IF;
    IF to_regprocedure('public.audit_log_seal(integer)') IS NOT NULL THEN
      GRANT EXECUTE ON FUNCTION public.audit_log_seal(integer) TO payment_app;
    END IF;
  END IF;
END
$$;
