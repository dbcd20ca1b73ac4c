"""The web process runs on uvicorn by default; Daphne (WEB_SERVER=daphne) stays supported."""

from __future__ import annotations

import httpx
import pytest
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import PYTHON
from tests.factories import make_user
from tradosphere.devrun import web_command


def test_the_command_line_is_uvicorns_unless_web_server_says_daphne(monkeypatch):
    monkeypatch.delenv("WEB_SERVER", raising=False)
    uvicorn = web_command(PYTHON, "127.0.0.1", 8000)
    assert uvicorn[1:4] == ["-m", "uvicorn", "tradosphere.asgi:application"]
    assert uvicorn[uvicorn.index("--loop") + 1] == "uvloop"
    assert uvicorn[uvicorn.index("--ws") + 1] == "websockets-sansio"
    assert uvicorn[uvicorn.index("--lifespan") + 1] == "off"

    monkeypatch.setenv("WEB_SERVER", "daphne")
    daphne = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", "8000"]
    assert web_command(PYTHON, "127.0.0.1", 8000) == [*daphne, "tradosphere.asgi:application"]
    assert web_command(PYTHON, "127.0.0.1", 8000, "uvicorn") == uvicorn  # the argument wins

    monkeypatch.setenv("WEB_SERVER", "gunicorn")
    with pytest.raises(ValueError, match=r"WEB_SERVER must be one of uvicorn, daphne"):
        web_command(PYTHON, "127.0.0.1", 8000)


def _dashboard_socket(base: str, session: str | None):  # type: ignore[no-untyped-def]
    return connect(
        base.replace("http://", "ws://") + "/ws/dashboard/",
        origin=base,
        additional_headers={"Cookie": f"sessionid={session}"} if session else {},
        proxy=None,
        open_timeout=10,
    )


def test_daphne_serves_pages_webhooks_and_the_dashboard_socket(transactional_db, start_web):
    base = start_web(WEB_SERVER="daphne")

    login = httpx.get(f"{base}/accounts/login/", timeout=10)
    assert login.status_code == 200
    assert login.headers["server"] == "daphne"  # not uvicorn's "uvicorn"
    assert 'name="password"' in login.text
    # Django with its database behind it (the copier is not running, hence "down").
    assert httpx.get(f"{base}/healthz", timeout=10).json()["checks"]["database"] == {"ok": True}
    # The bare webhook intake in front of Django.
    hook = httpx.post(f"{base}/hooks/{'x' * 43}", content=b"{}", timeout=10)
    assert (hook.status_code, hook.json()) == (404, {"error": "not found"})

    # An anonymous dashboard socket is refused at the handshake…
    with pytest.raises(InvalidStatus) as refused:
        with _dashboard_socket(base, None) as ws:
            ws.recv(timeout=5)
    assert refused.value.response.status_code == 403
    # …and a signed-in user's is accepted.
    client = Client()
    client.force_login(make_user())
    with _dashboard_socket(base, client.cookies["sessionid"].value) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
