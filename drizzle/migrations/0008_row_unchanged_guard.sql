-- Optimistic writes to a payment (issue #20). A Fiuu report is decided on the payment as read
-- without a lock, and its writes go to the database as one statement whose first part updates (or
-- locks) the payment only while its row version (xmin) is still the one read. The statement ends in
-- row_unchanged(<rows that part matched>), which aborts it, every write in it included, when the
-- payment changed in between; the caller then decides again under the row lock.
CREATE FUNCTION row_unchanged(matched bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF matched = 0 THEN
    RAISE EXCEPTION 'the row changed after it was read' USING ERRCODE = 'PY409';
  END IF;
  RETURN true;
END
$$;
