-- schemas/sql/roles.sql - the database roles of Relais and what each may do
-- (docs/SECURITY.md, "Database roles").
--
-- One file, two users: migration 6 (hub/migrations.c, which embeds this file
-- at build time) runs it in every database it migrates, and a DBA runs it by
-- hand when the hub's own account could not create the roles:
--   psql -v ON_ERROR_STOP=1 -d relais -f schemas/sql/roles.sql
-- as a superuser or a role with CREATEROLE, in every database of the hub
-- (roles belong to the cluster, grants to one database), after the hub has
-- migrated it to version 6 or later. Running it again changes nothing.
--
-- Roles are group roles (NOLOGIN). Give people and programs LOGIN roles that
-- are members of one of them:
--   relais_hub        the hub (`relais run`): writes the journal; may never
--                     change or delete what it journaled (events, steps,
--                     rejections are insert-only for it)
--   relais_auditor    reads the trail without payloads: events without body,
--                     rejections without raw, steps, deliveries, xref; runs
--                     `relais trace`, `relais person`, `relais audit verify`
--   relais_operator   an auditor who may also replay and discard dead
--                     deliveries (UPDATE deliveries, INSERT their signed steps)
--   relais_retention  `relais retention run`: purges payloads (body, raw) after
--                     their retention and writes its signed "purged" step;
--                     deletes nothing
--
-- Tables gaining a column later: the column lists of relais_auditor and
-- relais_retention below name columns one by one; a migration that adds a
-- column they need adds it here and runs this file again.
-- (No two question marks in a row in this file: it becomes a C string.)
DO $roles$
DECLARE
    wanted   text[] := ARRAY['relais_hub', 'relais_auditor', 'relais_operator', 'relais_retention'];
    r        text;
    missing  text[] := '{}';
    may_create boolean;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
    FOREACH r IN ARRAY wanted LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
        IF NOT may_create THEN
            missing := missing || r;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;   -- another database's migration made it at the same time
        END;
    END LOOP;
    IF cardinality(missing) > 0 THEN
        RAISE WARNING 'relais: the database roles % do not exist and % may not create roles (neither superuser nor CREATEROLE): nothing was granted. A DBA must run schemas/sql/roles.sql in database % (docs/SECURITY.md, "Database roles")',
            array_to_string(missing, ', '), current_user, current_database();
        RETURN;
    END IF;

    -- an operator is an auditor who may also act on dead deliveries
    IF NOT pg_has_role('relais_operator', 'relais_auditor', 'MEMBER') THEN
        IF may_create THEN
            BEGIN
                GRANT relais_auditor TO relais_operator;
            EXCEPTION WHEN unique_violation THEN
                NULL;
            END;
        ELSE
            RAISE WARNING 'relais: relais_operator is not a member of relais_auditor and % may not grant it: a DBA must run schemas/sql/roles.sql (docs/SECURITY.md, "Database roles")', current_user;
        END IF;
    END IF;

    -- everyone who opens the journal reads its schema version
    GRANT SELECT ON relais_schema_version, audit_epoch
        TO relais_hub, relais_auditor, relais_retention;

    -- the hub: insert-only on what it journals; the queues and states are its own
    GRANT SELECT, INSERT ON events, steps, rejections TO relais_hub;
    GRANT SELECT, INSERT, UPDATE, DELETE ON deliveries, unrouted, xref, package_state TO relais_hub;
    GRANT USAGE, SELECT ON SEQUENCE steps_id_seq, rejections_id_seq, deliveries_id_seq TO relais_hub;
    GRANT SELECT ON audit_events, audit_rejections TO relais_hub;
    GRANT EXECUTE ON FUNCTION relais_events_mentioning(text), relais_events_from_request(text) TO relais_hub;

    -- the auditor: everything but the payloads (events.body, rejections.raw)
    GRANT SELECT (id, tenant, source, record_id, type, subject, correlation_id, received_at,
                  body_sha256, purged_at) ON events TO relais_auditor;
    GRANT SELECT (id, at, source, record_id, location, reason, stream, seq, raw_sha256, purged_at)
        ON rejections TO relais_auditor;
    GRANT SELECT ON steps, deliveries, unrouted, xref, audit_events, audit_rejections TO relais_auditor;
    GRANT EXECUTE ON FUNCTION relais_events_mentioning(text), relais_events_from_request(text) TO relais_auditor;

    -- the operator (and the auditor's rights through membership)
    GRANT UPDATE ON deliveries TO relais_operator;
    GRANT INSERT ON steps TO relais_operator;
    GRANT USAGE ON SEQUENCE steps_id_seq TO relais_operator;

    -- the retention job: empties payloads past their retention, deletes nothing
    GRANT SELECT (id, type, received_at, purged_at), UPDATE (body, purged_at) ON events TO relais_retention;
    GRANT SELECT (id, at, purged_at), UPDATE (raw, purged_at) ON rejections TO relais_retention;
    GRANT SELECT ON deliveries, unrouted TO relais_retention;
    GRANT INSERT ON steps TO relais_retention;
    GRANT USAGE ON SEQUENCE steps_id_seq TO relais_retention;
END
$roles$;
