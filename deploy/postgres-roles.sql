-- crvault PostgreSQL role setup: the application may only INSERT and SELECT
-- the audit log.
--
-- Run once as a superuser (psql -v ON_ERROR_STOP=1 -f postgres-roles.sql),
-- after replacing the two passwords. Three roles:
--   crvault_owner  owns the schema and its tables, runs migrations
--                  (vaultd with VAULT_DATABASE_URL pointing at this role,
--                  once per upgrade); never used by the running server.
--   crvault_app    the running vaultd. May read and write the domain tables,
--                  but on the audit tables only INSERT and SELECT. It does not
--                  own them, so it cannot drop or disable their triggers.
--   crvault_audit_reader  optional read-only role for inspectors' tooling.
--
-- The append-only triggers (created by audit.Migrate) refuse UPDATE, DELETE
-- and TRUNCATE even for the owner; the grants below mean the application role
-- could not remove them even if it tried. A superuser can still do anything:
-- that is what signed checkpoints mirrored outside the database are for.

CREATE ROLE crvault_owner LOGIN PASSWORD 'change-me-owner';
CREATE ROLE crvault_app LOGIN PASSWORD 'change-me-app';
CREATE ROLE crvault_audit_reader NOLOGIN;

CREATE SCHEMA IF NOT EXISTS crvault AUTHORIZATION crvault_owner;
REVOKE ALL ON SCHEMA crvault FROM PUBLIC;
GRANT USAGE ON SCHEMA crvault TO crvault_app, crvault_audit_reader;
ALTER ROLE crvault_owner SET search_path = crvault;
ALTER ROLE crvault_app SET search_path = crvault;
ALTER ROLE crvault_audit_reader SET search_path = crvault;

-- Tables the owner creates from now on (migrations run as crvault_owner):
-- the application gets full DML on domain tables by default...
ALTER DEFAULT PRIVILEGES FOR ROLE crvault_owner IN SCHEMA crvault
	GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO crvault_app;
ALTER DEFAULT PRIVILEGES FOR ROLE crvault_owner IN SCHEMA crvault
	GRANT USAGE, SELECT ON SEQUENCES TO crvault_app;
ALTER DEFAULT PRIVILEGES FOR ROLE crvault_owner IN SCHEMA crvault
	GRANT SELECT ON TABLES TO crvault_audit_reader;

-- ...and after the first migration (the audit tables must exist), run the
-- block below, again as superuser or crvault_owner. Re-run it after any
-- migration that adds an audit table.
--
--   SET search_path = crvault;
--   REVOKE ALL ON audit_events, audit_hashes, audit_checkpoints FROM crvault_app;
--   GRANT SELECT, INSERT ON audit_events, audit_hashes, audit_checkpoints TO crvault_app;
--   REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_hashes, audit_checkpoints FROM PUBLIC;
--
-- Check: as crvault_app, this must fail with "permission denied":
--   UPDATE audit_events SET actor = actor WHERE seq = 1;
