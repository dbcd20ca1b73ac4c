"""GET /healthz: is every part of the system up?"""

import time

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from tradosphere.bus import CELERY_HEARTBEAT_KEY, COPIER_HEARTBEAT_KEY, sync_redis


def _heartbeat(raw: str | None, max_age_s: float) -> dict[str, object]:
    if raw is None:
        return {"ok": False, "error": "no heartbeat"}
    age = time.time() - float(raw.split()[0])
    ok = age <= max_age_s
    result: dict[str, object] = {"ok": ok, "age_s": round(age, 3)}
    if not ok:
        result["error"] = f"last heartbeat {age:.1f} s ago (limit {max_age_s:.0f} s)"
    return result


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, object]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except DatabaseError as e:
        checks["database"] = {"ok": False, "error": e.__class__.__name__}
    try:
        client = sync_redis()
        client.ping()
        checks["redis"] = {"ok": True}
        copier_beat, celery_beat = client.mget(COPIER_HEARTBEAT_KEY, CELERY_HEARTBEAT_KEY)
        checks["copier"] = _heartbeat(copier_beat, settings.COPIER_HEARTBEAT_MAX_AGE_S)
        checks["celery_worker"] = _heartbeat(celery_beat, settings.CELERY_HEARTBEAT_MAX_AGE_S)
    except redis.RedisError as e:
        checks["redis"] = {"ok": False, "error": e.__class__.__name__}
        unknown = {"ok": False, "error": "unknown: Redis is down"}
        checks["copier"] = checks["celery_worker"] = unknown
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "down", "checks": checks}, status=200 if ok else 503
    )
