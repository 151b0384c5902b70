#!/usr/bin/env bash
# Create the portal's PostgreSQL roles and grant them least privilege in one database. Idempotent: run it
# once at installation and again after every `manage.py migrate` (it converges every table's grants to the
# rules below; a half-applied run is impossible, it is one transaction). See deploy/postgres/README.md.
#
#   deploy/postgres/create-roles.sh DATABASE
#
# Connects with psql as PGUSER/PGHOST/PGPORT (libpq's variables), which must be a superuser or a role with
# CREATEROLE that may grant on the database's objects. Role names and optional passwords come from:
#   PORTAL_OWNER_ROLE  (portal_owner)   owns the schema objects; migrations run as this role
#   PORTAL_APP_ROLE    (portal_app)     the web application, Celery workers but the audit queue's
#   PORTAL_SEALER_ROLE (portal_sealer)  the Celery worker of the "audit" queue (chain sealing, checkpoints)
#   PORTAL_OWNER_PASSWORD, PORTAL_APP_PASSWORD, PORTAL_SEALER_PASSWORD  set (or change) the login password
set -euo pipefail

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DATABASE" >&2
  exit 2
fi
database=$1

args=(
  --no-psqlrc --quiet --single-transaction -v ON_ERROR_STOP=1 --dbname "$database"
  -v "db=$database"
  -v "owner=${PORTAL_OWNER_ROLE:-portal_owner}"
  -v "app=${PORTAL_APP_ROLE:-portal_app}"
  -v "sealer=${PORTAL_SEALER_ROLE:-portal_sealer}"
)
# Passwords travel as psql variables and are quoted by psql (:'name'), never spliced into SQL text here.
[ -n "${PORTAL_OWNER_PASSWORD:-}" ] && args+=(-v "owner_password=$PORTAL_OWNER_PASSWORD")
[ -n "${PORTAL_APP_PASSWORD:-}" ] && args+=(-v "app_password=$PORTAL_APP_PASSWORD")
[ -n "${PORTAL_SEALER_PASSWORD:-}" ] && args+=(-v "sealer_password=$PORTAL_SEALER_PASSWORD")

exec psql "${args[@]}" <<'SQL'
-- The audit app's tables (events, subjects, checkpoints, and any partition of them): append-only for
-- everyone but the owner. Matched by name so that monthly partitions are covered too.
\set audit_tables '''audit\\_%'''

-- Roles: created when missing; their attributes are re-asserted on every run.
SELECT format('CREATE ROLE %I', name) FROM unnest(ARRAY[:'owner', :'app', :'sealer']) AS name
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT', name)
FROM unnest(ARRAY[:'owner', :'app', :'sealer']) AS name \gexec
\if :{?owner_password}
ALTER ROLE :"owner" PASSWORD :'owner_password';
\endif
\if :{?app_password}
ALTER ROLE :"app" PASSWORD :'app_password';
\endif
\if :{?sealer_password}
ALTER ROLE :"sealer" PASSWORD :'sealer_password';
\endif
-- Neither application role may act as the owner (membership would hand it the owner's rights).
SELECT format('REVOKE %I FROM %I', owner_role, member)
FROM (VALUES (:'owner')) AS o(owner_role), unnest(ARRAY[:'app', :'sealer']) AS member
WHERE pg_has_role(member, owner_role, 'MEMBER') \gexec

-- Database and schema: everyone connects; only the owner creates objects.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"owner", :"app", :"sealer";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM :"app", :"sealer";
GRANT USAGE, CREATE ON SCHEMA public TO :"owner";
GRANT USAGE ON SCHEMA public TO :"app", :"sealer";

-- Adopt what another role (e.g. a superuser's earlier migrate) created: the owner must own every table,
-- sequence, view and function of the schema, or its migrations cannot alter them. A table's identity
-- sequences and indexes follow the table.
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
              n.nspname, c.relname, :'owner')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :'owner')
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass
        AND d.deptype IN ('a', 'i')))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.relkind <> 'p', c.oid \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'owner')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = :'owner')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \gexec

-- Start from nothing, then grant exactly what each role needs (inside this transaction nobody sees the gap).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, :"app", :"sealer";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, :"app", :"sealer";
SELECT format('REVOKE ALL (%s) ON %I.%I FROM %I', string_agg(quote_ident(a.attname), ', '),
              n.nspname, c.relname, grantee)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
CROSS JOIN unnest(ARRAY[:'app', :'sealer']) AS grantee
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attacl IS NOT NULL
GROUP BY n.nspname, c.relname, grantee \gexec

-- The application: reads and writes its data, but only reads and appends to the audit trail. No TRUNCATE,
-- TRIGGER or REFERENCES anywhere; not owning a table, it can neither ALTER nor DISABLE TRIGGER. Checkpoints,
-- the Merkle tree and witness cosignatures only the sealer writes: the application reads them.
SELECT format('GRANT %s ON %I.%I TO %I',
              CASE WHEN c.relname IN ('audit_auditcheckpoint', 'audit_auditmerklenode',
                                      'audit_auditcosignature') THEN 'SELECT'
                   WHEN c.relname LIKE :audit_tables THEN 'SELECT, INSERT'
                   ELSE 'SELECT, INSERT, UPDATE, DELETE' END,
              n.nspname, c.relname, :'app')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \gexec
-- Sequences: the bulk loader reserves id ranges with setval (UPDATE); audit ids are only drawn.
SELECT format('GRANT %s ON SEQUENCE %I.%I TO %I',
              CASE WHEN c.relname LIKE :audit_tables THEN 'USAGE, SELECT' ELSE 'USAGE, SELECT, UPDATE' END,
              n.nspname, c.relname, :'app')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S' \gexec
-- Functions: the monthly-partition functions (SECURITY DEFINER, owned by the owner; the migrations revoke
-- them from PUBLIC) are called by the app, whose workers run records.create_partitions (and, in-process,
-- every periodic task).
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO :"app";
-- The sealer runs the "audit" queue, audit.create_partitions among its tasks: of the owner's functions it
-- may call that one's only (creating the trail's partitions ahead).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM :"sealer";
SELECT format('GRANT EXECUTE ON FUNCTION %s TO %I', p.oid::regprocedure, :'sealer')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proname = 'audit_event_create_partitions' \gexec
-- Except audit retention: detaching a month of the trail is the owner's alone (the migration revokes it from
-- PUBLIC; the grant above would hand it back).
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, %I, %I', p.oid::regprocedure, :'app', :'sealer')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proname = 'audit_event_detach_partition' \gexec

-- The sealer: reads the trail, fills the chain columns of events (the append-only trigger still allows that
-- only once, from empty to values), appends the Merkle tree's hashes, signed checkpoints and the witnesses'
-- cosignatures of them. Nothing else.
SELECT format('GRANT SELECT ON %I.%I TO %I', n.nspname, c.relname, :'sealer')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname LIKE :audit_tables \gexec
SELECT format('GRANT UPDATE (chain_position, prev_hash, hash, sealed_at) ON %I.%I TO %I',
              n.nspname, c.relname, :'sealer')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname = 'audit_auditevent' \gexec
SELECT format('GRANT INSERT ON %I.%I TO %I', n.nspname, c.relname, :'sealer')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
  AND c.relname IN ('audit_auditcheckpoint', 'audit_auditmerklenode', 'audit_auditcosignature') \gexec
SELECT format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO %I', n.nspname, c.relname, :'sealer')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S'
  AND (c.relname LIKE 'audit\_auditcheckpoint%' OR c.relname LIKE 'audit\_auditmerklenode%'
       OR c.relname LIKE 'audit\_auditcosignature%') \gexec

-- Objects the owner creates later (new tables of a migration, partitions made at run time by its SECURITY
-- DEFINER functions): the app may read and append at once, whatever the table, so a new audit partition is
-- never more open than its parent. UPDATE and DELETE on new non-audit tables come with the next run of this
-- script, which the deployment runs after every migrate. The sealer works through the parent tables only.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public REVOKE ALL ON TABLES FROM :"app", :"sealer";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO :"app";
SQL
