#!/usr/bin/env bash
# Runs create-roles.sh for the portal's database with the roles' passwords read from secret files. The only
# file of the postgres service's /docker-entrypoint-initdb.d in deploy/compose.yaml, and the command of its
# `roles` one-shot service:
#
#   first install   the official postgres image runs this once, on an empty data directory, as its
#                   superuser over the local socket (POSTGRES_USER, POSTGRES_DB and PGPASSWORD are set by the
#                   image's entrypoint): it creates portal_owner, portal_app and portal_sealer.
#   every migrate   the `roles` service runs it after `migrate` completed, over the network (PGHOST=postgres,
#                   the superuser's password from POSTGRES_PASSWORD_FILE): grants on the new tables, and the
#                   passwords re-set from the secret files (changing a password = change its file, re-run).
#
# Environment (defaults):
#   PORTAL_CREATE_ROLES  create-roles.sh, mounted read-only (/opt/portal/postgres/create-roles.sh)
#   PORTAL_DATABASE      the portal's database ($POSTGRES_DB)
#   PORTAL_SECRETS_DIR   the password files portal_owner_password, portal_app_password,
#                        portal_sealer_password (/run/secrets)
#   PGHOST, PGPORT, PGUSER ($POSTGRES_USER, else postgres), PGPASSWORD or POSTGRES_PASSWORD_FILE
set -euo pipefail

script="${PORTAL_CREATE_ROLES:-/opt/portal/postgres/create-roles.sh}"
database="${PORTAL_DATABASE:-${POSTGRES_DB:-}}"
secrets="${PORTAL_SECRETS_DIR:-/run/secrets}"

fail() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
[ -r "$script" ] || fail "cannot read $script (mount deploy/postgres/create-roles.sh there)"
[ -n "$database" ] || fail "no database: set PORTAL_DATABASE or POSTGRES_DB"

# A secret file's content without surrounding whitespace (as the portal reads its *_FILE settings).
read_secret() {
  local path=$1 value
  [ -r "$path" ] || fail "cannot read the secret $path"
  value="$(<"$path")"
  value="${value#"${value%%[![:space:]]*}"}"
  value="${value%"${value##*[![:space:]]}"}"
  [ -n "$value" ] || fail "the secret $path is empty"
  printf '%s' "$value"
}

PORTAL_OWNER_PASSWORD="$(read_secret "$secrets/portal_owner_password")"
PORTAL_APP_PASSWORD="$(read_secret "$secrets/portal_app_password")"
PORTAL_SEALER_PASSWORD="$(read_secret "$secrets/portal_sealer_password")"
export PORTAL_OWNER_PASSWORD PORTAL_APP_PASSWORD PORTAL_SEALER_PASSWORD
export PGUSER="${PGUSER:-${POSTGRES_USER:-postgres}}"
if [ -z "${PGPASSWORD:-}" ] && [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  PGPASSWORD="$(read_secret "$POSTGRES_PASSWORD_FILE")"
  export PGPASSWORD
fi

echo "portal roles: $script $database (as $PGUSER${PGHOST:+ on $PGHOST})"
bash "$script" "$database"
echo "portal roles: done"
