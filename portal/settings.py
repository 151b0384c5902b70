"""Settings for every environment, driven by environment variables.

Nothing set: SQLite under var/ and Celery in-process (eager tasks, an embedded beat thread).
DATABASE_URL / REDIS_URL switch to PostgreSQL and a real broker, worker and beat.
PORTAL_ENV=production refuses to start with DEBUG or a default secret key.
"""

import os
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    """A setting from NAME, or from the file named by NAME_FILE (for mounted secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: str) -> bool:
    value = envstr(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), not {value!r}")


def envint(name: str, default: str) -> int:
    value = envstr(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


PORTAL_ENV = envstr("PORTAL_ENV", "development")
if PORTAL_ENV not in ("development", "test", "production"):
    raise ImproperlyConfigured(f"PORTAL_ENV must be development, test or production, not {PORTAL_ENV!r}")
PRODUCTION = PORTAL_ENV == "production"

_DEFAULT_SECRET = "insecure-development-key-never-use-in-production"  # noqa: S105
SECRET_KEY = envstr("SECRET_KEY", _DEFAULT_SECRET)
DEBUG = envbool("DEBUG", "false" if PRODUCTION else "true")
if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off in production")
    if SECRET_KEY == _DEFAULT_SECRET or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value in production")

ALLOWED_HOSTS = [h for h in envstr("ALLOWED_HOSTS", "" if PRODUCTION else "*").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in envstr("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

# The demo world's shared password (SPEC §8). Printed by seed_demo; production refuses demo accounts.
DEMO_PASSWORD = envstr("DEMO_PASSWORD", "portal-demo")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "csp",
    "portal",
    "portal.accounts",
    "portal.records",
    "portal.access",
    "portal.web",
    "portal.api",
    "scoring",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost but for security headers: it sees every response, whatever produced it, and writes the
    # audit event before any of it leaves (SPEC §4).
    "audit.middleware.AuditMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Security (issue 7): CSP and Permissions-Policy on every response; the session's idle and absolute limits
    # once the user is known; the second factor on the session user; a session user who must enrol is kept to
    # the enrolment pages; Axes (innermost) turns a locked-out login into its refusal, inside the audit event.
    "csp.middleware.CSPMiddleware",
    "portal.accounts.middleware.PermissionsPolicyMiddleware",
    "portal.accounts.middleware.SessionLifetimeMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.accounts.middleware.MfaEnrolmentMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
VAR_DIR = Path(envstr("PORTAL_VAR_DIR", str(BASE_DIR / "var")))
DATABASE_URL = envstr("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", "60"))}
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must point at PostgreSQL (postgres://…); unset it for SQLite"
        )
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # The hot statements the product writes by hand or compiles once are planned once per connection
    # (portal/prepared.py). Off behind a pooler in transaction mode (deploy/SCALING.md §4), and by default
    # when connections last one request (DB_CONN_MAX_AGE=0): each would prepare its statements only once.
    DB_PREPARED_STATEMENTS = envbool(
        "DB_PREPARED_STATEMENTS", "true" if DATABASES["default"]["CONN_MAX_AGE"] != 0 else "false"
    )
    # Without psycopg2 (a checkout without the postgres extra) Django says so when it first connects.
    if DB_PREPARED_STATEMENTS and find_spec("psycopg2") is not None:
        from portal.pgconnection import PortalConnection, PortalCursor

        DATABASES["default"].setdefault("OPTIONS", {}).update(
            connection_factory=PortalConnection, cursor_factory=PortalCursor
        )
    DATABASES["default"]["TEST"] = {"NAME": envstr("TEST_DATABASE_NAME", "test_portal")}
else:
    if PRODUCTION:
        raise ImproperlyConfigured("Production needs DATABASE_URL (PostgreSQL)")
    DB_PREPARED_STATEMENTS = False
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "portal.sqlite3"),
            "OPTIONS": {
                # Writers queue for the lock at BEGIN instead of failing mid-transaction.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            },
            "TEST": {"NAME": str(VAR_DIR / "test_portal.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # Axes first: a locked-out username is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    # Password, organisation and second factor (the `otp` credential) for the web form and the token endpoint.
    "portal.accounts.backends.PortalBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Our user model requires an organisation for non-superusers; guardian's anonymous user is not needed.
ANONYMOUS_USER_NAME = None
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"

# --- I18N -----------------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "portal" / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []

# --- Security -------------------------------------------------------------------------------------
SESSION_ENGINE = "portal.accounts.sessions"  # Django's database sessions, the per-request read planned once
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "true")
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Security: MFA, lockout, sessions, headers (issue 7) ---------------------------------------------
# A demo run (`dev.py serve` with the demo world): demo accounts may skip the second factor and may exist in
# production settings. Off by default everywhere.
PORTAL_DEMO = envbool("PORTAL_DEMO", "false")
# Every login needs a second factor (TOTP or a recovery code); a user who has none yet is kept to enrolment.
MFA_REQUIRED = envbool("PORTAL_MFA_REQUIRED", "true" if PRODUCTION else "false")
OTP_TOTP_ISSUER = envstr("OTP_TOTP_ISSUER", "Credit oversight portal")
MFA_RECOVERY_CODES = 10
# Sessions end after 15 idle minutes and, whatever the activity, after the absolute lifetime.
SESSION_IDLE_TIMEOUT_SECONDS = envint("PORTAL_SESSION_IDLE_SECONDS", str(15 * 60))
SESSION_COOKIE_AGE = envint("PORTAL_SESSION_MAX_AGE_SECONDS", str(8 * 3600))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Pages warn this long before a session ends and offer to keep it.
SESSION_WARNING_SECONDS = envint("PORTAL_SESSION_WARNING_SECONDS", "120")
# django-axes: after 5 failed logins for a username (web form or token endpoint) it is locked for a while;
# so is a client address with 5 failures whatever the usernames (password spraying).
AXES_FAILURE_LIMIT = envint("PORTAL_LOGIN_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = timedelta(seconds=envint("PORTAL_LOGIN_LOCKOUT_SECONDS", str(15 * 60)))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# An attempt while locked is refused unseen and does not restart the lockout period.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "portal.accounts.lockout.AuditedAxesHandler"
AXES_LOCKOUT_CALLABLE = "portal.accounts.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "audit.recorder.client_ip"  # believes X-Forwarded-For only from TRUSTED_PROXIES
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit trail
AXES_VERBOSE = False
# A failed attempt keeps the request's GET and POST data (shown in the admin) with these fields' values
# masked. The list replaces Axes' default (username, ip_address); the password is always masked. The
# username stays in its own column, the lockout's key.
AXES_SENSITIVE_PARAMETERS = [
    "username",
    "ip_address",
    "password",
    "otp",  # a TOTP code or a single-use recovery code
    "token",
    "code",
    "recovery_code",
    "csrfmiddlewaretoken",
]
# Per-user request rate on the API's data endpoints; beyond it, 429 with Retry-After (audited).
API_USER_THROTTLE_RATE = envstr("PORTAL_API_USER_THROTTLE_RATE", "600/min")
LOGIN_THROTTLE_RATE = envstr("LOGIN_THROTTLE_RATE", "30/min")
# Content-Security-Policy (django-csp 4): no inline script or style anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=(), interest-cohort=()"
)
if PRODUCTION and not MFA_REQUIRED and not PORTAL_DEMO:
    raise ImproperlyConfigured("PORTAL_MFA_REQUIRED may be off in production only in a demo (PORTAL_DEMO)")

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Bearer first: a request without credentials then gets 401 with a WWW-Authenticate challenge, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["portal.api.renderers.PortalJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_RATES": {"login": envstr("LOGIN_THROTTLE_RATE", "30/min")},
    "NUM_PROXIES": envint("NUM_PROXIES", "0"),
}
API_TOKEN_TTL_SECONDS = envint("API_TOKEN_TTL_SECONDS", str(8 * 3600))
# How long an approved credential reset's enrolment link works (single use either way).
CREDENTIAL_RESET_TTL_SECONDS = envint("PORTAL_CREDENTIAL_RESET_TTL_SECONDS", str(24 * 3600))
API_MAX_PAGE_SIZE = 200
API_DEFAULT_PAGE_SIZE = 50
SPECTACULAR_SETTINGS = {
    "TITLE": "Credit-data oversight portal API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ConsumerStatusEnum": "portal.records.models.Consumer.Status",
        "RoleEnum": "portal.accounts.models.Role",
        "MembershipStatusEnum": "portal.accounts.models.Membership.Status",
        "CredentialResetStatusEnum": "portal.accounts.models.CredentialReset.Status",
    },
    # Every operation's error answers (400/401/403/404/429/503) in the schema (issue 7).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.add_error_responses",
    ],
}

# --- Celery ---------------------------------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL", "")
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured("Production needs REDIS_URL for the Celery broker")
# The in-process transport names a host only so that kombu does not warn that none was supplied.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost//"
CELERY_RESULT_BACKEND = None
# Without a broker, tasks run in the calling process and the embedded beat thread fires the schedule.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = "default"
# Sealing the audit trail must never wait behind a score refresh: each kind of work has its own queue.
CELERY_TASK_ROUTES = {
    "audit.*": {"queue": "audit"},
    "scoring.*": {"queue": "scoring"},
    "exports.*": {"queue": "exports"},
}
# The embedded beat runs inside `manage.py serve` when there is no broker; off for tests and workers.
PORTAL_EMBEDDED_BEAT = envbool("PORTAL_EMBEDDED_BEAT", "false" if REDIS_URL else "true")

# Every periodic schedule of the portal, in one place; each entry names a task by its registered name.
BEAT_HEARTBEAT_SECONDS = 30.0
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # Proves to /healthz that beat is alive and a worker executes what it sends.
    "beat-heartbeat": {"task": "portal.beat_heartbeat", "schedule": BEAT_HEARTBEAT_SECONDS},
    "audit-seal": {"task": "audit.seal_events", "schedule": envint("AUDIT_SEAL_SECONDS", "2")},
    "audit-checkpoint": {
        "task": "audit.publish_checkpoint",
        "schedule": envint("AUDIT_CHECKPOINT_SECONDS", "60"),
    },
    "access-expire-grants": {"task": "access.expire_grants", "schedule": 60.0},
    # Export files hold clear personal data: deleted once expired or their grant has ended.
    "exports-discard-expired": {"task": "exports.discard_expired", "schedule": 300.0},
    "scoring-incremental-refresh": {"task": "scoring.start_incremental_refresh", "schedule": 15 * 60.0},
    "scoring-requeue-expired-chunks": {"task": "scoring.requeue_expired_chunks", "schedule": 60.0},
    # --- Monthly partitions (issue 8) ---
    # PostgreSQL only (no-ops on SQLite): partitions three months ahead, hourly; idempotent and cheap.
    "records-create-partitions": {"task": "records.create_partitions", "schedule": 3600.0},
    "audit-create-partitions": {"task": "audit.create_partitions", "schedule": 3600.0},
}

# Shared between web, workers and beat when Redis is there; per process in the embedded default.
CACHES = {
    "default": (
        {
            "BACKEND": "portal.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "portal",
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Audit trail (SPEC §4) ------------------------------------------------------------------------
# Ed25519 private key (32 raw bytes, base64) that signs checkpoints. Without one, development and tests use a
# key file kept under VAR_DIR; production refuses to start without it.
AUDIT_SIGNING_KEY = envstr("AUDIT_SIGNING_KEY", "")
if PRODUCTION and not AUDIT_SIGNING_KEY:
    raise ImproperlyConfigured("Set AUDIT_SIGNING_KEY (or AUDIT_SIGNING_KEY_FILE) in production")
# Key of the HMAC that stands in for search terms in the trail (the term itself is never stored).
AUDIT_QUERY_HMAC_KEY = envstr("AUDIT_QUERY_HMAC_KEY", "") or f"audit-query:{SECRET_KEY}"
# Proxies whose X-Forwarded-For is believed (addresses or CIDR networks); otherwise the client IP is the peer.
TRUSTED_PROXIES = [p.strip() for p in envstr("TRUSTED_PROXIES", "").split(",") if p.strip()]
# Query parameters the trail keeps in clear (filters and paging); any other parameter's values are hashed.
AUDIT_PLAIN_QUERY_PARAMETERS = frozenset(
    {
        "segment",
        "since",
        "until",
        "kind",
        "province",
        "page_size",
        "cursor",
        "status",
        "actor",
        "organisation",
        "consumer",
        "action",
        "outcome",
    }
)
# Unsealed events older than this make audit_verify and /healthz warn.
AUDIT_PENDING_WARNING_SECONDS = 60
# The transparency log (SPEC §4): the checkpoints' origin line and signer name, a schema-less URL without
# spaces or "+" (audit/notes.py checks it), and how old (seconds) the newest valid checkpoint may be before
# /healthz warns.
AUDIT_LOG_ORIGIN = envstr("AUDIT_LOG_ORIGIN", "portal.example.org/audit-log")
AUDIT_CHECKPOINT_MAX_AGE = envint("AUDIT_CHECKPOINT_MAX_AGE", "600")
# Witnesses (c2sp.org/tlog-witness) that cosign each new checkpoint: comma-separated "<URL> <verifier key>"
# pairs, the URL the witness's submission prefix (POST <URL>/add-checkpoint), the key what its operator
# published (`manage.py audit_witness --print-key`). A slow or refusing witness never blocks sealing or reads.
AUDIT_WITNESSES = [
    tuple(entry.split()) for entry in envstr("AUDIT_WITNESSES", "").split(",") if entry.strip()
]
if any(len(entry) != 2 for entry in AUDIT_WITNESSES):
    raise ImproperlyConfigured('AUDIT_WITNESSES is comma-separated "<URL> <verifier key>" pairs')
AUDIT_WITNESS_TIMEOUT = envint("AUDIT_WITNESS_TIMEOUT", "5")
# Earlier checkpoint signing public keys (base64 of 32 raw bytes, comma-separated), kept after a key rotation
# so that checkpoints signed before it still verify; a checkpoint under any other key fails verification.
AUDIT_RETIRED_PUBLIC_KEYS = [
    k.strip() for k in envstr("AUDIT_RETIRED_PUBLIC_KEYS", "").split(",") if k.strip()
]
# The reviewed list of paths that serve no consumer data and are not audited (prefixes). Everything else is.
AUDIT_EXEMPT_PATH_PREFIXES = ["/healthz", "/static/", "/api/schema/", "/api/docs/", "/favicon.ico"]

# --- Encrypted identifiers (issue 7) ------------------------------------------------------------------
# Consumers' resident ID and phone numbers are stored AES-256-GCM encrypted, with an HMAC-SHA256 for exact
# search. IDENTIFIER_KEYS: comma-separated `keyid:base64key` entries (32-byte keys); the first encrypts new
# values, every one listed decrypts, so a key is retired only after `manage.py identifiers_rotate_key`.
# IDENTIFIER_HMAC_KEY: the same format (keys of 32 bytes or more); the first hashes, all are searched.
# Without them, development and tests use key files generated under VAR_DIR; production refuses to start.
IDENTIFIER_KEYS = envstr("IDENTIFIER_KEYS", "")
IDENTIFIER_HMAC_KEY = envstr("IDENTIFIER_HMAC_KEY", "")
if PRODUCTION and not (IDENTIFIER_KEYS and IDENTIFIER_HMAC_KEY):
    raise ImproperlyConfigured(
        "Set IDENTIFIER_KEYS and IDENTIFIER_HMAC_KEY (or their _FILE variants) in production"
    )
if IDENTIFIER_KEYS or IDENTIFIER_HMAC_KEY:
    # Malformed keys fail at start-up, not at the first consumer read.
    from portal.records import identifiers as _identifiers

    try:
        if IDENTIFIER_KEYS:
            _identifiers.parse_keys(IDENTIFIER_KEYS, "IDENTIFIER_KEYS", min_bytes=32, max_bytes=32)
        if IDENTIFIER_HMAC_KEY:
            _identifiers.parse_keys(IDENTIFIER_HMAC_KEY, "IDENTIFIER_HMAC_KEY", min_bytes=32)
    except _identifiers.IdentifierKeyError as exc:
        raise ImproperlyConfigured(str(exc)) from None

# --- Scoring --------------------------------------------------------------------------------------------
# Consumers per refresh chunk (one task, one feature query, one bulk write), and how long a worker may hold a
# chunk before another may take it over: above the chunk task's hard time limit (300 s).
SCORING_CHUNK_SIZE = envint("SCORING_CHUNK_SIZE", "5000")
SCORING_CHUNK_LEASE_SECONDS = envint("SCORING_CHUNK_LEASE_SECONDS", "600")

# --- Web pages (issue 6) --------------------------------------------------------------------------
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Rows per page of the web's lists (transactions, events, consumers); the pages are keyset-paged.
WEB_PAGE_SIZE = envint("WEB_PAGE_SIZE", "25")
# The language switch keeps the choice in a cookie that scripts need not read.
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Logging --------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"client_errors_plain": {"()": "portal.logfilters.ClientErrorsWithoutTraceback"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_errors_plain"],
        }
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO"), "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # lockouts are audit events; its per-login notes are noise
    },
}

# Tests that need PostgreSQL, Redis, a worker or Chromium fail instead of skipping when this is set (CI).
PORTAL_REQUIRE_SERVICES = envbool("PORTAL_REQUIRE_SERVICES", "false")
# The database is a Citus cluster placed by `manage.py citus_distribute` (deploy/SCALING.md §3): a consumer
# looked up by public id or identifier is then read in two single-shard statements (its key table, then the
# consumer by id) instead of one that Citus would send to every shard.
PORTAL_CITUS = envbool("PORTAL_CITUS", "false")
