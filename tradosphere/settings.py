"""Settings, read from the environment.

Every value comes from an environment variable with a default that works for
development. `make run` keeps generated development values in `var/dev.env`;
production sets the variables itself and has no such file.
"""

import json
import os
import shlex
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from tradosphere.devenv import load_env_file

BASE_DIR = Path(__file__).resolve().parent.parent

# The dev env file fills in only what the real environment leaves unset.
# Tests set TRADOSPHERE_ENV_FILE="" so a developer's file never leaks into them.
_env_file = os.environ.get("TRADOSPHERE_ENV_FILE", str(BASE_DIR / "var" / "dev.env"))
if _env_file and Path(_env_file).exists():
    for _key, _value in load_env_file(Path(_env_file)).items():
        os.environ.setdefault(_key, _value)


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", "0")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Run `make run` once to generate var/dev.env, "
        "or set SECRET_KEY in the environment."
    )
# Broker credentials are encrypted with a key of their own, so rotating the
# session signing key never makes stored credentials unreadable.
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY", "")
if not FIELD_ENCRYPTION_KEY:
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is not set.")
CRYPTOGRAPHY_KEY = FIELD_ENCRYPTION_KEY
CRYPTOGRAPHY_SALT = "tradosphere-credentials"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "accounts",
    "brokers",
    "copier",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "tradosphere.urls"
ASGI_APPLICATION = "tradosphere.asgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "0"),
    )
}
if os.environ.get("DATABASE_TEST_NAME"):
    # Lets two test runs share one PostgreSQL server without sharing a database.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DATABASE_TEST_NAME"]}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes share the embedded database: WAL lets readers run
    # beside the one writer, and IMMEDIATE transactions queue writers on the
    # busy timeout instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("CHANNELS_PREFIX", "asgi")},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "tradosphere.tasks.heartbeat", "schedule": 2.0},
    "refresh-exchange-markets": {
        "task": "brokers.refresh_exchange_markets",
        "schedule": 6 * 3600.0,
    },
}
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "celery")

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
LOGIN_REDIRECT_URL = "/dashboard/"
LOGIN_URL = "/accounts/login/"

EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "TradoSphere <noreply@tradosphere.local>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Production hardening: on unless DEBUG, each overridable from the environment.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "0" if DEBUG else "1")
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", "0" if DEBUG else "1")
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", "0" if DEBUG else "1")
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "0" if DEBUG else "1")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The health check is polled over plain HTTP by load balancers.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

# Exchanges: an optional base URL per ccxt exchange id (a proxy in front of
# the exchange, or a local peer in tests), as JSON: {"binance": "http://..."}.
try:
    CCXT_API_HOSTS: dict[str, str] = json.loads(os.environ.get("CCXT_API_HOSTS", "{}"))
except json.JSONDecodeError as e:
    raise ImproperlyConfigured(f"CCXT_API_HOSTS must be a JSON object: {e}") from None

# MetaTrader 5 farm (docs/mt5.md): the terminal installation folders agents
# run in, the agent command (a Windows Python, or `wine python.exe` on Linux),
# and extra environment for agents, as JSON.
MT5_TERMINAL_SLOTS: list[str] = envlist("MT5_TERMINAL_SLOTS", "")
MT5_AGENT_COMMAND: list[str] = shlex.split(
    os.environ.get("MT5_AGENT_COMMAND", f"{shlex.quote(sys.executable)} -m brokers.mt5.agent")
)
try:
    MT5_AGENT_ENV: dict[str, str] = json.loads(os.environ.get("MT5_AGENT_ENV", "{}"))
except json.JSONDecodeError as e:
    raise ImproperlyConfigured(f"MT5_AGENT_ENV must be a JSON object: {e}") from None
MT5_POLL_MS = envint("MT5_POLL_MS", "10")

# Signal webhooks: rate limits per minute until plans (billing) set them.
SIGNALS_PER_MINUTE_PER_SOURCE = envint("SIGNALS_PER_MINUTE_PER_SOURCE", "600")
SIGNALS_PER_MINUTE_PER_USER = envint("SIGNALS_PER_MINUTE_PER_USER", "1200")
# Signals accepted but not yet handled by the copier, beyond which the intake
# answers 503 + Retry-After rather than accept a signal it would copy late.
# Counted per stream shard (an eighth each), so it is also a memory bound.
SIGNALS_MAX_BACKLOG = envint("SIGNALS_MAX_BACKLOG", "80000")

# Copier tuning.
COPIER_STREAM = os.environ.get("COPIER_STREAM", "copier:events")
COPIER_GROUP = os.environ.get("COPIER_GROUP", "copier")
COPIER_HEARTBEAT_MAX_AGE_S = 5.0
CELERY_HEARTBEAT_MAX_AGE_S = 10.0

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
