-- The outbox trigger's NOTIFY made every transaction that wrote to the outbox take PostgreSQL's
-- database-wide notification lock at commit, held through the WAL flush: such commits ran one at
-- a time. Measured with pgbench on this project's outbox INSERT: 4,700 tx/s with the trigger,
-- 11,300 without (10 clients, 2 cores). Every outbox writer is a dbservice process, and each wakes
-- its own relay right after its commit (relay.ts afterCommit); the relays' polling picks up rows a
-- crashed replica left behind.
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS crm_outbox_notify();
