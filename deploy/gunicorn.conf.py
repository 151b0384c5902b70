"""Gunicorn settings for the portal's web process (see deploy/README.md).

Run as: gunicorn -c deploy/gunicorn.conf.py portal.wsgi:application
nginx terminates TLS and proxies to the loopback address below; nothing else should reach gunicorn.
"""

import os


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning (taskset, systemd CPUAffinity=)
    except AttributeError:
        return os.cpu_count() or 1


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8001")

# Every worker thread may hold its own PostgreSQL connection (DB_CONN_MAX_AGE), so
# workers x threads counts against PostgreSQL's max_connections: size them together.
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * _cores() + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))

# The arbiter restarts a worker that has not checked in for `timeout` seconds; nginx's
# proxy_read_timeout (60s) bounds how long a client waits for one request.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30  # on SIGTERM/SIGHUP, time given to in-flight requests
keepalive = 5  # seconds; only nginx connects

# Recycle workers now and then so that slow leaks cannot accumulate; jitter avoids all restarting at once.
max_requests = 2000
max_requests_jitter = 200

# Requests carrying X-Forwarded-* are trusted only from these addresses (nginx on this machine).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Logs go to stdout/stderr, i.e. the journal under systemd.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Client address as nginx saw it, request id set by nginx ($request_id), status, bytes, duration in µs. The
# path only (%(U)s), never the query string or the Referer: search terms (resident ID and phone numbers in
# `q`) must not reach the logs; the audit trail keeps only their keyed hash.
access_log_format = (
    '%({x-forwarded-for}i)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(D)sus rid=%({x-request-id}i)s ua="%(a)s"'
)

proc_name = "portal-web"
