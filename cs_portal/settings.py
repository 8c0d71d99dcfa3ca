"""One settings module, read from the environment.

Without ``DATABASE_URL`` the project runs on an SQLite file (writers serialised
with ``BEGIN IMMEDIATE`` so money and counters stay exact); without
``REDIS_URL`` it uses the in-memory channel layer, a local-memory cache and
runs Celery tasks inline. That is the embedded default of DESIGN.md.
"""

import secrets
import sys
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Production is the default: DEBUG is on only when the developer command
# (scripts/dev) or the test runner (scripts/test) exports DEBUG=1.
DEBUG = env.bool("DEBUG", default=env.bool("DJANGO_DEBUG", default=False))
# Commands that only read the code, and neither sign nor serve anything, run
# without a key (the migration check, the catalogues, the API schema): they get
# one made for this process alone. Everything else refuses to start without it.
CODE_ONLY_COMMANDS = {"makemigrations", "makemessages", "compilemessages", "spectacular"}
if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me-in-production-0123456789")
elif not env.str("SECRET_KEY", default="") and Path(sys.argv[0]).name == "manage.py" \
        and sys.argv[1:2] and sys.argv[1] in CODE_ONLY_COMMANDS:
    SECRET_KEY = secrets.token_urlsafe(50)
else:
    SECRET_KEY = env.str("SECRET_KEY")  # required in production
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # daphne's runserver serves the websockets too, so that command gets it; every
    # other process (the servers, Celery, the tests) is spared importing it, which
    # installs Twisted's reactor and took a quarter of a second of each start
    *(["daphne"] if sys.argv[1:2] == ["runserver"] else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "core",
    "accounts",
    "merchants",
    "tickets",
    "compensation",
    "risk",
    "incidents",
    "reports",
    "cs_portal",
]

MIDDLEWARE = [
    # first: what any part of the request publishes goes out together at its end
    "core.middleware.PublishTogetherMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.StaticFilesMiddleware",  # WhiteNoise, async under ASGI
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.middleware.DomainErrorMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as django-axes asks: turns a locked-out login into its 429 answer
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cs_portal.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "accounts.context_processors.role",
                "tickets.context_processors.merchant_attention",
            ],
        },
    },
]
ASGI_APPLICATION = "cs_portal.asgi.application"
WSGI_APPLICATION = None

# --- Database -------------------------------------------------------------
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Under ASGI every request may run on another thread: keep no
        # persistent connections and let psycopg's pool reuse them.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})
        if env.bool("DB_POOL", default=True):
            DATABASES["default"]["OPTIONS"]["pool"] = {
                "min_size": env.int("DB_POOL_MIN", default=2),
                "max_size": env.int("DB_POOL_MAX", default=20),
                "timeout": 10,
            }
    if env.str("DATABASE_REPLICA_URL", default=""):
        # a streaming replica for the reads that may lag (core/db_router.py:
        # the dashboard, the reports); in tests it is the primary itself
        DATABASES["replica"] = {**env.db("DATABASE_REPLICA_URL"),
                                "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
                                "OPTIONS": dict(DATABASES["default"]["OPTIONS"]),
                                "TEST": {"MIRROR": "default"}}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DATABASE_ROUTERS = ["core.db_router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache, Celery ----------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # Redis pub/sub (core/channel_layer.py says why not channels-redis's list
    # layer): a group is one Redis channel a process subscribes to once; an
    # idle socket never times out; a failed subscription is retried and every
    # socket then re-reads from the database what it may have missed.
    # Pub/sub channels are global to a Redis server, whatever its db number: the
    # prefix keeps two deployments (or a benchmark and a test run) on one Redis
    # apart; by default it names the db of the URL
    # Past one Redis (docs/SCALING.md): CHANNEL_REDIS_URLS lists several, and
    # each group lives on one of them by a consistent hash of its name (every
    # process must list the same servers in the same order).
    _channel_urls = env.list("CHANNEL_REDIS_URLS", default=[]) or [env.str("CHANNEL_REDIS_URL", default=REDIS_URL)]
    _channel_url = _channel_urls[0]
    _channel_db = (_channel_url.rsplit("/", 1)[-1].split("?")[0] or "0") if _channel_url.count("/") >= 3 else "0"
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "core.channel_layer.RedisPubSubLayer",
            "CONFIG": {"hosts": [{"address": url} for url in _channel_urls],
                       "prefix": env.str("CHANNEL_LAYER_PREFIX", default=f"cs{_channel_db}.")},
        }
    }
    # one pool per process (core/cache.py: Django's own opened a connection per request under ASGI)
    CACHES = {"default": {"BACKEND": "core.cache.SharedPoolRedisCache", "LOCATION": REDIS_URL}}
    # a session read is one Redis GET (the database keeps them too, and answers when Redis is away)
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://localhost/"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "Asia/Shanghai"
# The Celery app, loaded on first use (``core.tasks.enqueue``): the package no longer imports it,
# so a web worker that never queues never imports it (cs_portal/__init__.py)
TASKS_APP = "cs_portal.celery.app"
# Periodic jobs: Celery beat in production; `manage.py run_periodic` runs the
# same table inline beside the server in the embedded default.
CELERY_BEAT_SCHEDULE = {
    "sla-sweep": {"task": "tickets.tasks.sla_sweep", "schedule": timedelta(seconds=30)},
    # what was said reaches the tickets' search text (tickets.services.conversation.fold_search_text)
    "search-fold": {"task": "tickets.tasks.fold_search_text", "schedule": timedelta(seconds=15)},
    "shift-reminders": {"task": "tickets.tasks.shift_reminders", "schedule": timedelta(minutes=1)},
    "auto-confirm": {"task": "merchants.tasks.auto_confirm", "schedule": timedelta(minutes=10)},
    "resend-deadlines": {"task": "tickets.tasks.resend_deadlines", "schedule": timedelta(minutes=1)},
    "credit-scores": {"task": "merchants.tasks.credit_scores", "schedule": timedelta(hours=6)},
    "blacklist-recent-counts": {"task": "compensation.tasks.blacklist_recent_counts", "schedule": timedelta(minutes=15)},
    "stolen-account-detector": {"task": "risk.tasks.detect_stolen_accounts", "schedule": timedelta(minutes=15)},
    "incident-rules": {"task": "incidents.tasks.sweep_incident_rules", "schedule": timedelta(minutes=5)},
    "incident-deadlines": {"task": "incidents.tasks.sweep_incident_deadlines", "schedule": timedelta(minutes=1)},
    "resume-bulk-jobs": {"task": "incidents.tasks.resume_stalled_jobs", "schedule": timedelta(seconds=15)},
    # the market board's figures to the supervisors' consoles (incidents.events.push_board)
    "board-push": {"task": "incidents.tasks.push_board", "schedule": timedelta(seconds=10)},
    # closed days into the reports' rollup (reports.services.refresh_rollups)
    "report-rollups": {"task": "reports.tasks.refresh_report_rollups", "schedule": timedelta(minutes=5)},
}

# The embedded default runs those jobs inside the server process (scripts/dev sets it).
RUN_JOBS_IN_PROCESS = env.bool("RUN_JOBS_IN_PROCESS", default=False)

# --- Auth -----------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTHENTICATION_BACKENDS = [
    # first: refuses every login (form, admin, API token) while the account or
    # the client address is locked out, before the password is even checked
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# How many proxies in front of Django append to X-Forwarded-For. 0 (the
# default): the client is REMOTE_ADDR, and a client-sent X-Forwarded-For is
# ignored. Keep 0 when the ASGI server already resolves the client (uvicorn's
# FORWARDED_ALLOW_IPS in cs_portal/gunicorn.py); the login lockout, the DRF
# throttles (NUM_PROXIES) and the login history all read it the same way
# (accounts.logins.client_ip).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Failed logins (django-axes): LOGIN_FAILURE_LIMIT failures within the
# cool-off lock the account, and separately the client address, for
# LOGIN_COOLOFF_MINUTES (each further try restarts it); a supervisor can lift a
# lock (POST /api/v1/auth/lockouts/reset/, or the risk page).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "accounts.logins.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockouts.lockout_response"
# a success does not wipe the address's failures (else one good login of the
# attacker's own account between guesses would reset the address's count)
AXES_RESET_ON_SUCCESS = False
# the login history is accounts.LoginEvent; axes keeps only the failures
AXES_DISABLE_ACCESS_LOG = True
# API tokens (accounts.ApiToken): a new key per login, valid this many hours by
# role (0: never expires; the integration account's machine token)
API_TOKEN_TTL_HOURS = {
    "agent": env.int("API_TOKEN_TTL_STAFF_HOURS", default=12),
    "supervisor": env.int("API_TOKEN_TTL_STAFF_HOURS", default=12),
    "merchant_staff": env.int("API_TOKEN_TTL_MERCHANT_HOURS", default=24),
    "buyer": env.int("API_TOKEN_TTL_BUYER_HOURS", default=7 * 24),
    "integration": env.int("API_TOKEN_TTL_INTEGRATION_HOURS", default=0),
}
# Reports (issue #14): the chat response-time target, in seconds: the reports
# show the share of agent replies slower than it and alert when the period's
# average passes it; and the longest period a report or export may cover.
CHAT_RESPONSE_TARGET_S = env.int("CHAT_RESPONSE_TARGET_S", default=30)
REPORT_MAX_DAYS = env.int("REPORT_MAX_DAYS", default=366)
# the reports' PostgreSQL session (core.db_router.analytic_reads), set for their transaction only
REPORT_DB_SETTINGS = {
    "work_mem": env.str("REPORT_WORK_MEM", default="64MB"),
    "random_page_cost": env.float("REPORT_RANDOM_PAGE_COST", default=1.1),
    "max_parallel_workers_per_gather": env.int("REPORT_PARALLEL_WORKERS", default=0),
}
# The dashboard's inflow threshold: tickets opened in one minute past which the
# minute's bar is highlighted (0: no threshold).
DASHBOARD_INFLOW_ALERT_PER_MIN = env.int("DASHBOARD_INFLOW_ALERT_PER_MIN", default=30)
# The market board's other thresholds (issue #14 item 5), each drawn on its
# chart; a bucket past it is highlighted and a tile whose last five minutes
# pass it turns red (0 or None: no threshold). Tickets of one category in 5
# minutes; chats waiting for a first reply; the average seconds to a chat's
# first reply; spend as a percentage of the day's budget; the rolling CSAT
# (an alert when it falls below).
BOARD_THRESHOLDS = {
    "category_per_bucket": env.int("BOARD_CATEGORY_ALERT_PER_5MIN", default=60),
    "waiting_chats": env.int("BOARD_WAITING_CHATS_ALERT", default=20),
    "first_reply_s": env.int("BOARD_FIRST_REPLY_ALERT_S", default=60),
    "spend_percent": env.int("BOARD_SPEND_ALERT_PERCENT", default=80),
    "csat_below": env.float("BOARD_CSAT_ALERT_BELOW", default=7.0),
}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- i18n -----------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Static ---------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
DATA_UPLOAD_MAX_MEMORY_SIZE = 25 * 1024 * 1024
# uploaded files (evidence, chat attachments) go through Django's storage API:
# an operator points them at object storage with MEDIA_STORAGE_BACKEND (e.g.
# "storages.backends.s3.S3Storage" once django-storages is installed) and its
# options as JSON in MEDIA_STORAGE_OPTIONS. They are never served as static
# files: only the scoped views (tickets.api) hand them out.
STORAGES = {
    "default": {
        "BACKEND": env.str("MEDIA_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
        "OPTIONS": env.json("MEDIA_STORAGE_OPTIONS", default={}),
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- DRF ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes anonymous calls a 401.
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.JSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # throttles key on the real client, never on a header the client writes
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CS Workbench API",
    "DESCRIPTION": "Tickets, orders and the customer-service workbench. Money is integer fen.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
    # core.api.Input's docstring is not an input's description
    "GET_LIB_DOC_EXCLUDES": "core.api.schema_doc_excludes",
    # core/urls.py: <id:...> is a row id (a 64-bit integer)
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "format": "int64", "minimum": 1}},
    "ENUM_NAME_OVERRIDES": {
        "TicketStatusEnum": "tickets.models.Ticket.Status",
        "OrderStatusEnum": "merchants.models.Order.Status",
        "ShipmentStatusEnum": "merchants.models.Shipment.Status",
        "OvertimeStatusEnum": "tickets.models.OvertimeRequest.Status",
        "HoldStatusEnum": "merchants.models.FundHold.Status",
        "PayoutStatusEnum": "merchants.models.Payout.Status",
        "TierEnum": "tickets.sla.TIER_CHOICES",
        "IncidentStatusEnum": "incidents.models.Incident.Status",
        "BulkJobStatusEnum": "incidents.models.BulkJob.Status",
        "CouponFailureRemedyEnum": "incidents.models.CouponFailure.Remedy",
    },
}

# --- Domain settings --------------------------------------------------------
# core/locks.py: taking a row lock out of the global order raises (the developer
# settings and the tests; production trusts what the suite proved)
LOCK_ORDER_CHECKS = env.bool("LOCK_ORDER_CHECKS", default=DEBUG)
# the compensation ledger is this many hash chains side by side (compensation/ledger.py)
LEDGER_CHAINS = env.int("LEDGER_CHAINS", default=16)
SHIFT_HOURS = env.float("SHIFT_HOURS", default=7.0)
REOPEN_WINDOW = timedelta(days=env.int("REOPEN_WINDOW_DAYS", default=7))
BODY_MAX_CHARS = 5000
# pictures and PDFs in chat (issue #13 item 3): the size cap per file, the
# pixel cap per image (a decompression bomb is refused before it is decoded),
# the thumbnails' longest side, and how many files one message carries
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
ATTACHMENT_MAX_PIXELS = env.int("ATTACHMENT_MAX_PIXELS", default=40_000_000)
ATTACHMENT_THUMBNAIL_PX = 320
ATTACHMENTS_PER_MESSAGE = 6
AUTO_CONFIRM_DAYS = env.int("AUTO_CONFIRM_DAYS", default=10)
# staff may undo an order cancellation this long after it (if nothing happened since)
CANCEL_UNDO_WINDOW_S = env.int("CANCEL_UNDO_WINDOW_S", default=600)
# the stolen-account rule: no login for RISK_DORMANT_DAYS, then within
# RISK_BURST_WINDOW_HOURS at least RISK_BURST_MIN_ORDERS orders in at least
# RISK_BURST_MIN_SLOTS distinct hours of the day
RISK_DORMANT_DAYS = env.int("RISK_DORMANT_DAYS", default=90)
RISK_BURST_WINDOW_HOURS = env.int("RISK_BURST_WINDOW_HOURS", default=24)
RISK_BURST_MIN_ORDERS = env.int("RISK_BURST_MIN_ORDERS", default=3)
RISK_BURST_MIN_SLOTS = env.int("RISK_BURST_MIN_SLOTS", default=3)
# the emergency plan's grade-2 rule: MORE than this many parcels of a kind in one
# region within INCIDENT_RULE_WINDOW_HOURS raises an incident by itself
INCIDENT_RULE_THRESHOLDS = {
    "backlog": env.int("INCIDENT_BACKLOG_THRESHOLD", default=20),
    "lost": env.int("INCIDENT_LOST_THRESHOLD", default=5),
    "stuck": env.int("INCIDENT_STUCK_THRESHOLD", default=100),
}
INCIDENT_RULE_WINDOW_HOURS = env.int("INCIDENT_RULE_WINDOW_HOURS", default=24)
# a bulk job writes and publishes its progress every N items or every S seconds
BULK_PROGRESS_EVERY = env.int("BULK_PROGRESS_EVERY", default=100)
BULK_PROGRESS_INTERVAL_S = env.float("BULK_PROGRESS_INTERVAL_S", default=1.0)
# without Celery (the embedded default) a bulk job runs in a thread of the server
# process, so the request returns and the progress bar moves; a job whose
# heartbeat is older than BULK_STALLED_AFTER_S is resumed by the periodic sweep
BULK_JOBS_IN_THREAD = env.bool("BULK_JOBS_IN_THREAD", default=RUN_JOBS_IN_PROCESS)
# a running job reports at least every BULK_PROGRESS_INTERVAL_S, so 30 s of silence means its worker died
BULK_STALLED_AFTER_S = env.int("BULK_STALLED_AFTER_S", default=30)

# --- Security (production) --------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the cookie-less meta tag anyway
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # behind TLS in production; a loopback benchmark may turn these off
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
