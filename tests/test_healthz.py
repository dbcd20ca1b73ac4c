"""GET /healthz reports every part of the running system, and notices a dead one."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PYTHON, wait_for

CELERY_WORKER = [
    PYTHON,
    "-m",
    "celery",
    "-A",
    "tradosphere",
    "worker",
    "--pool=solo",
    "--loglevel=INFO",
]
CELERY_BEAT = [
    PYTHON,
    "-m",
    "celery",
    "-A",
    "tradosphere",
    "beat",
    "--scheduler",
    "django_celery_beat.schedulers:DatabaseScheduler",
    "--pidfile=",
]


def _health(base_url: str) -> httpx.Response:
    return httpx.get(f"{base_url}/healthz", timeout=5)


@pytest.mark.django_db
def test_it_is_down_naming_copier_and_worker_without_heartbeats(client, redis_client):
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    checks = body["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["redis"] == {"ok": True}
    assert checks["copier"] == {"ok": False, "error": "no heartbeat"}
    assert checks["celery_worker"] == {"ok": False, "error": "no heartbeat"}


def test_it_is_ok_with_every_process_up_and_down_once_the_copier_dies(
    transactional_db, web_server, copier_daemon, start_process, redis_client
):
    copier = copier_daemon()
    worker = start_process("celery-worker", CELERY_WORKER)
    beat = start_process("celery-beat", CELERY_BEAT)

    def all_ok() -> bool:
        for proc in (copier, worker, beat):
            assert proc.popen.poll() is None, f"{proc.name} exited:\n{proc.output()}"
        response = _health(web_server)
        return response.status_code == 200

    wait_for(all_ok, timeout_s=45, what="/healthz to become 200")
    body = _health(web_server).json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "copier", "celery_worker"}
    assert all(check["ok"] for check in body["checks"].values()), body

    copier.kill()

    def copier_reported_down() -> dict[str, object] | None:
        response = _health(web_server)
        if response.status_code != 503:
            return None
        return response.json()

    body = wait_for(copier_reported_down, timeout_s=20, what="/healthz to report the copier down")
    assert body["status"] == "down"
    assert body["checks"]["copier"]["ok"] is False
    assert "heartbeat" in body["checks"]["copier"]["error"]
    # Only the copier died: everything else stays healthy.
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["celery_worker"]["ok"] is True, body
