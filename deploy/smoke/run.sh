#!/usr/bin/env bash
# A production-like run of the portal on this machine, and the smoke test against it.
#
# Debian's nginx (TLS with a certificate made now, static files from collectstatic) in front of gunicorn
# (deploy/gunicorn.conf.py), one Celery worker per queue (default, audit, scoring, exports) and one beat,
# against PostgreSQL and Redis, with the production settings (PORTAL_ENV=production, DEBUG off, secrets read
# from generated files). The commands are those of the systemd units in deploy/systemd/. nginx runs
# unprivileged (as `nobody` when started by root) from a temporary prefix, on the ports below.
#
# Then deploy/smoke/check.py logs in through nginx as `regulator`, reads a consumer, exports a segment
# (built by the exports worker, downloaded from web), and as `auditor` waits
# for that read's audit event to be sealed by the worker, with the client address nginx forwarded.
# Everything started here is stopped on exit, whatever happens, and the run fails if a process is left.
#
# PORTAL_DEMO=1 is set because the run uses the demo world: it is the only sanctioned use of that switch
# (see deploy/RUNBOOK.md). seed_demo itself refuses production settings, so the demo world is seeded with
# the development settings (no broker: the score refresh runs in-process) into the same database first.
#
# The database is reached with least privilege, as deploy/postgres/README.md describes: create-roles.sh makes
# the roles, migrations run as portal_owner, the audit queue's worker as portal_sealer, the rest as portal_app.
#
# Environment (defaults): SMOKE_PG_HOST (127.0.0.1), SMOKE_PG_PORT (5432), SMOKE_PG_USER (postgres, a
# superuser that creates the database and the roles), SMOKE_DATABASE (portal_smoke,
# dropped and re-created), SMOKE_REDIS (redis://127.0.0.1:6379), SMOKE_REDIS_DB (14, flushed),
# SMOKE_WEB_PORT (8821, gunicorn), SMOKE_HTTP_PORT (8822), SMOKE_TLS_PORT (8823), SMOKE_CONSUMERS (300),
# SMOKE_VENV (./.venv, from `python3 dev.py install` with DATABASE_URL set), SMOKE_KEEP=1 keeps the run
# directory (logs) after the run.
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${SMOKE_VENV:-$ROOT/.venv}"
PG_HOST="${SMOKE_PG_HOST:-127.0.0.1}"
PG_PORT="${SMOKE_PG_PORT:-5432}"
PG_USER="${SMOKE_PG_USER:-postgres}"  # a superuser: creates the database and the roles
PG="postgres://$PG_USER@$PG_HOST:$PG_PORT"
DB="${SMOKE_DATABASE:-portal_smoke}"
REDIS="${SMOKE_REDIS:-redis://127.0.0.1:6379}"
REDIS_DB="${SMOKE_REDIS_DB:-14}"
WEB_PORT="${SMOKE_WEB_PORT:-8821}"
HTTP_PORT="${SMOKE_HTTP_PORT:-8822}"
TLS_PORT="${SMOKE_TLS_PORT:-8823}"
CONSUMERS="${SMOKE_CONSUMERS:-300}"
QUEUES=(default audit scoring exports)
SERVER_NAME=localhost

say() { printf '[smoke %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || fail "no virtualenv at $VENV (run: DATABASE_URL=… python3 dev.py install)"
"$VENV/bin/python" -c "import psycopg2" 2>/dev/null || fail "$VENV lacks psycopg2 (install with DATABASE_URL set)"

# --- nginx: Debian's package -----------------------------------------------------------------------------
NGINX="$(command -v nginx || true)"
if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
if [ -z "$NGINX" ]; then
  say "nginx is missing: installing Debian's package"
  # RUNLEVEL=1 keeps the package's maintainer scripts from starting a system nginx on port 80.
  apt-get update -q && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null
  NGINX=/usr/sbin/nginx
fi
command -v openssl >/dev/null || { apt-get update -q && apt-get install -y -q openssl >/dev/null; }
say "$("$NGINX" -v 2>&1)"

# --- The run directory: secrets, certificate, static files, logs, nginx prefix ------------------------------
RUN_DIR="$(mktemp -d /tmp/portal-smoke.XXXXXX)"
chmod 0711 "$RUN_DIR"   # nginx (another user) traverses it to its prefix and the static files
LOGS="$RUN_DIR/logs"
mkdir -p "$LOGS" "$RUN_DIR/var" "$RUN_DIR/tls"
install -d -m 0700 "$RUN_DIR/secrets"

declare -A PIDS=()
STOP_ORDER=(nginx web beat "${QUEUES[@]/#/worker-}")
RESULT=1

stop_all() {
  local name pid waited
  for name in "${STOP_ORDER[@]}"; do
    pid="${PIDS[$name]:-}"
    [ -n "$pid" ] || continue
    # Each process leads its own process group (setsid): the group holds its children (gunicorn's and
    # Celery's workers, nginx's worker). SIGTERM: gunicorn and Celery shut down warm, nginx fast.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for name in "${STOP_ORDER[@]}"; do
    pid="${PIDS[$name]:-}"
    [ -n "$pid" ] || continue
    waited=0
    while kill -0 -- "-$pid" 2>/dev/null && [ "$waited" -lt 60 ]; do sleep 0.5; waited=$((waited + 1)); done
    if kill -0 -- "-$pid" 2>/dev/null; then
      say "$name ($pid) did not stop in 30 s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

on_exit() {
  local status=$?
  trap - EXIT INT TERM
  stop_all
  local left
  left="$(pgrep -f -- "$RUN_DIR" || true)"
  if [ -n "$left" ]; then
    say "processes left running after the stop:" >&2
    ps -o pid,args -p "$(echo "$left" | paste -sd,)" >&2 || true
    status=1
  else
    say "all processes stopped (none left referring to $RUN_DIR)"
  fi
  redis-cli -u "$REDIS/$REDIS_DB" flushdb >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ] || [ "$RESULT" -ne 0 ]; then
    for log in "$LOGS"/*.log "$RUN_DIR"/nginx/logs/*.log; do
      [ -s "$log" ] || continue
      printf '\n--- last lines of %s\n' "${log#"$RUN_DIR"/}" >&2
      tail -n 25 "$log" >&2
    done
    status=1
  fi
  if [ "${SMOKE_KEEP:-}" = 1 ]; then say "kept $RUN_DIR"; else rm -rf "$RUN_DIR"; fi
  if [ "$status" -eq 0 ]; then say "PASSED"; else say "FAILED" >&2; fi
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# Secrets, each in a file (the *_FILE form of every setting), as an operator keeps them in /etc/portal.
"$VENV/bin/python" - "$RUN_DIR/secrets" <<'PY'
import base64, os, secrets, sys
from pathlib import Path

folder = Path(sys.argv[1])
values = {
    "secret_key": secrets.token_urlsafe(64),
    "audit_signing_key": base64.b64encode(os.urandom(32)).decode(),
    "audit_query_key": secrets.token_urlsafe(48),
    "demo_password": secrets.token_urlsafe(18),
    "owner_password": secrets.token_urlsafe(24),
    "app_password": secrets.token_urlsafe(24),
    "sealer_password": secrets.token_urlsafe(24),
    # Consumers' resident ID and phone numbers: one encryption key and one search (HMAC) key.
    "identifier_keys": "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "identifier_hmac_key": "h1:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
}
for name, value in values.items():
    path = folder / name
    path.write_text(value + "\n")
    path.chmod(0o600)
PY

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$SERVER_NAME" \
  -addext "subjectAltName=DNS:$SERVER_NAME,IP:127.0.0.1" \
  -keyout "$RUN_DIR/tls/privkey.pem" -out "$RUN_DIR/tls/fullchain.pem" 2>"$LOGS/openssl.log" \
  || fail "openssl could not make the certificate"
chmod 0600 "$RUN_DIR/tls/privkey.pem"

for role in owner app sealer; do
  printf -v "${role^^}_PASSWORD" '%s' "$(cat "$RUN_DIR/secrets/${role}_password")"
done
OWNER_URL="postgres://portal_owner:$OWNER_PASSWORD@$PG_HOST:$PG_PORT/$DB"
APP_URL="postgres://portal_app:$APP_PASSWORD@$PG_HOST:$PG_PORT/$DB"
SEALER_URL="postgres://portal_sealer:$SEALER_PASSWORD@$PG_HOST:$PG_PORT/$DB"

ENV_FILE="$RUN_DIR/portal.env"
cat >"$ENV_FILE" <<EOF
PORTAL_ENV=production
SECRET_KEY_FILE=$RUN_DIR/secrets/secret_key
DATABASE_URL=$APP_URL
REDIS_URL=$REDIS/$REDIS_DB
ALLOWED_HOSTS=$SERVER_NAME
CSRF_TRUSTED_ORIGINS=https://$SERVER_NAME:$TLS_PORT
STATIC_ROOT=$RUN_DIR/static
AUDIT_SIGNING_KEY_FILE=$RUN_DIR/secrets/audit_signing_key
AUDIT_QUERY_HMAC_KEY_FILE=$RUN_DIR/secrets/audit_query_key
IDENTIFIER_KEYS_FILE=$RUN_DIR/secrets/identifier_keys
IDENTIFIER_HMAC_KEY_FILE=$RUN_DIR/secrets/identifier_hmac_key
TRUSTED_PROXIES=127.0.0.1,::1
PORTAL_DEMO=1
DEMO_PASSWORD_FILE=$RUN_DIR/secrets/demo_password
PORTAL_VAR_DIR=$RUN_DIR/var
LOG_LEVEL=INFO
GUNICORN_BIND=127.0.0.1:$WEB_PORT
WEB_CONCURRENCY=2
GUNICORN_THREADS=2
FORWARDED_ALLOW_IPS=127.0.0.1,::1
CELERY_CONCURRENCY=1
EOF
# Like systemd's EnvironmentFile=: a clean environment plus the file, nothing inherited from this shell.
mapfile -t PORTAL_VARS < <(grep -E '^[A-Z][A-Z0-9_]*=' "$ENV_FILE")
BASE_ENV=(PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" HOME="$RUN_DIR/var" LANG=C.UTF-8 PYTHONPATH="$ROOT")
portal() { (cd "$ROOT" && env -i "${BASE_ENV[@]}" "${PORTAL_VARS[@]}" "$@"); }
# Least privilege as in production (deploy/postgres/): migrations as the owner role, the audit queue's worker
# as the sealer, everything else as the application role.
as_owner() { (cd "$ROOT" && env -i "${BASE_ENV[@]}" "${PORTAL_VARS[@]}" DATABASE_URL="$OWNER_URL" "$@"); }
roles() {
  PGHOST=$PG_HOST PGPORT=$PG_PORT PGUSER=$PG_USER PORTAL_OWNER_PASSWORD=$OWNER_PASSWORD \
    PORTAL_APP_PASSWORD=$APP_PASSWORD PORTAL_SEALER_PASSWORD=$SEALER_PASSWORD \
    "$ROOT/deploy/postgres/create-roles.sh" "$DB" \
    >>"$LOGS/roles.log" 2>&1 || { cat "$LOGS/roles.log" >&2; fail "create-roles.sh"; }
}

start() {
  local name=$1
  shift
  (cd "$ROOT" && exec setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null) &
  PIDS[$name]=$!
}

# --- Database and broker --------------------------------------------------------------------------------
say "database $DB (re-created), Redis DB $REDIS_DB (flushed)"
psql "$PG/postgres" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
psql "$PG/postgres" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$DB\"" >/dev/null
redis-cli -u "$REDIS/$REDIS_DB" flushdb >/dev/null
say "roles portal_owner, portal_app, portal_sealer (deploy/postgres/create-roles.sh)"
roles

say "manage.py check --deploy (production settings)"
portal python manage.py check --deploy --fail-level ERROR >"$LOGS/check.log" 2>&1 \
  || { cat "$LOGS/check.log" >&2; fail "check --deploy"; }
say "migrate"
as_owner python manage.py migrate --no-input -v0 >"$LOGS/migrate.log" 2>&1 || fail "migrate (as portal_owner)"
roles  # grants on the tables the migrations made
portal python manage.py check --deploy --database default --fail-level ERROR >>"$LOGS/check.log" 2>&1 \
  || { cat "$LOGS/check.log" >&2; fail "check --deploy --database default (audit triggers)"; }
say "collectstatic"
portal python manage.py collectstatic --no-input -v0 >"$LOGS/collectstatic.log" 2>&1 || fail "collectstatic"

say "seed_demo --consumers $CONSUMERS (development settings, no broker: seed_demo refuses production)"
mapfile -t SEED_VARS < <(printf '%s\n' "${PORTAL_VARS[@]}" | grep -vE '^(PORTAL_ENV|REDIS_URL)=')
(cd "$ROOT" && env -i "${BASE_ENV[@]}" "${SEED_VARS[@]}" PORTAL_ENV=development DEBUG=false \
  PORTAL_EMBEDDED_BEAT=false python manage.py seed_demo --consumers "$CONSUMERS") >"$LOGS/seed.log" 2>&1 \
  || fail "seed_demo"
tail -n 2 "$LOGS/seed.log" | sed 's/password: [^ ]*/password: (generated)/'

# --- The processes, as the systemd units start them -----------------------------------------------------
say "starting gunicorn on 127.0.0.1:$WEB_PORT, workers for ${QUEUES[*]}, beat"
start web env -i "${BASE_ENV[@]}" "${PORTAL_VARS[@]}" \
  gunicorn -c "$ROOT/deploy/gunicorn.conf.py" --pid "$RUN_DIR/gunicorn.pid" portal.wsgi:application
for queue in "${QUEUES[@]}"; do
  url=$APP_URL
  [ "$queue" = audit ] && url=$SEALER_URL
  start "worker-$queue" env -i "${BASE_ENV[@]}" "${PORTAL_VARS[@]}" DATABASE_URL="$url" \
    celery -A portal worker -l INFO -Q "$queue" --hostname="$queue@portal-smoke" --concurrency=1 \
    --max-tasks-per-child=100 --pidfile="$RUN_DIR/worker-$queue.pid"
done
start beat env -i "${BASE_ENV[@]}" "${PORTAL_VARS[@]}" \
  celery -A portal beat -l INFO --schedule="$RUN_DIR/var/celerybeat-schedule" --pidfile="$RUN_DIR/beat.pid"

say "nginx on 127.0.0.1:$TLS_PORT (TLS) and :$HTTP_PORT"
"$VENV/bin/python" "$ROOT/deploy/smoke/render_nginx.py" --prefix "$RUN_DIR/nginx" --server-name "$SERVER_NAME" \
  --http-port "$HTTP_PORT" --tls-port "$TLS_PORT" --upstream "127.0.0.1:$WEB_PORT" \
  --static-root "$RUN_DIR/static" --certificate "$RUN_DIR/tls/fullchain.pem" \
  --key "$RUN_DIR/tls/privkey.pem" >/dev/null
AS_NGINX=()
if [ "$(id -u)" -eq 0 ]; then
  # Unprivileged even when started by root: the master runs as nobody and owns only its prefix and key.
  chown -R nobody:nogroup "$RUN_DIR/nginx" "$RUN_DIR/tls"
  AS_NGINX=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all)
fi
NGINX_ARGS=(-p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" -e "$RUN_DIR/nginx/logs/error.log")
"${AS_NGINX[@]}" "$NGINX" -t -q "${NGINX_ARGS[@]}" || fail "nginx -t on the rendered site"
start nginx env -i PATH=/usr/sbin:/usr/bin:/bin "${AS_NGINX[@]}" "$NGINX" "${NGINX_ARGS[@]}" -g "daemon off;"

# --- The smoke test ---------------------------------------------------------------------------------------
"$VENV/bin/python" "$ROOT/deploy/smoke/check.py" --port "$TLS_PORT" --http-port "$HTTP_PORT" \
  --cafile "$RUN_DIR/tls/fullchain.pem" --static-root "$RUN_DIR/static" \
  --password-file "$RUN_DIR/secrets/demo_password" --server-name "$SERVER_NAME" \
  || fail "smoke checks (see the logs below)"

for name in "${!PIDS[@]}"; do
  kill -0 "${PIDS[$name]}" 2>/dev/null || fail "$name exited during the run"
done
[ "$(ps -o user= -p "$(cat "$RUN_DIR/nginx/nginx.pid")" | tr -d ' ')" != root ] \
  || fail "nginx's master runs as root"
say "ok: nginx master runs as $(ps -o user= -p "$(cat "$RUN_DIR/nginx/nginx.pid")" | tr -d ' ')"

# One worker per queue, each consuming only its own.
portal celery -A portal inspect active_queues --json --timeout 5 >"$LOGS/queues.json" 2>"$LOGS/inspect.log" \
  || fail "celery inspect active_queues"
"$VENV/bin/python" - "$LOGS/queues.json" "${QUEUES[@]}" <<'PY' || fail "queues"
import json, sys

replies = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
wanted = sys.argv[2:]
got = {host: sorted(q["name"] for q in queues) for host, queues in replies.items()}
expected = {f"{q}@portal-smoke": [q] for q in wanted}
if got != expected:
    sys.exit(f"workers and their queues: {got}, expected {expected}")
print(f"ok: one worker per queue: {', '.join(f'{h} -> {q[0]}' for h, q in sorted(got.items()))}")
PY

# Least privilege held: nothing but the application and sealer roles is connected to the database.
connected=$(psql "$PG/postgres" -Atc "SELECT string_agg(DISTINCT usename, ',' ORDER BY usename)
  FROM pg_stat_activity WHERE datname = '$DB' AND pid <> pg_backend_pid()")
case ",$connected," in
  *,portal_app,*) ;;
  *) fail "the application role is not connected to $DB (connected: $connected)" ;;
esac
[ -z "$(tr ',' '\n' <<<"$connected" | grep -vxE 'portal_app|portal_sealer')" ] \
  || fail "roles connected to $DB: $connected"
say "ok: connected to $DB as $connected only"

say "manage.py audit_verify (production settings)"
portal python manage.py audit_verify | sed 's/^/    /' || fail "audit_verify"
RESULT=0
