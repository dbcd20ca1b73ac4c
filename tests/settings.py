"""Settings for the test suite: the product's settings under a test environment.

pytest-django loads these before any conftest, so the environment is set
here. Product processes that tests start inherit it.
"""

import os
import secrets

# Tests never read a developer's var/dev.env, and run with production-like
# settings (DEBUG off) minus HTTPS, which loopback servers cannot offer.
os.environ["TRADOSPHERE_ENV_FILE"] = ""
os.environ.setdefault("SECRET_KEY", "test-" + secrets.token_urlsafe(40))
os.environ.setdefault("FIELD_ENCRYPTION_KEY", "test-" + secrets.token_urlsafe(32))
os.environ.setdefault(
    "DATABASE_URL", "postgres://tradosphere:tradosphere@127.0.0.1:5432/tradosphere"
)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ["DEBUG"] = "0"
os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
os.environ["SECURE_SSL_REDIRECT"] = "0"
os.environ["SESSION_COOKIE_SECURE"] = "0"
os.environ["CSRF_COOKIE_SECURE"] = "0"
os.environ["SECURE_HSTS_SECONDS"] = "0"
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
# Playwright's sync API runs an event loop in the test thread; the ORM calls
# the tests make between browser steps are still plain synchronous calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

from tradosphere.settings import *  # noqa: F403
