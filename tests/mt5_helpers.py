"""MT5 test helpers: a stand-in terminal, the farm process, linking through the site.

The fixtures are registered in `tests/conftest.py`.
"""

from __future__ import annotations

import json

import pytest

from brokers.models import LinkRequest
from tests.conftest import PYTHON
from tests.mt5_standin.control import Terminal

LOGIN, PASSWORD, INVESTOR = 7001, "trading-pw-1", "investor-pw-1"


@pytest.fixture
def mt5_terminal(tmp_path):
    term = Terminal(tmp_path / "terminal.json")
    term.configure(accounts=[{"login": LOGIN, "password": PASSWORD, "investor_password": INVESTOR}])
    return term


@pytest.fixture
def mt5_farm(start_process, redis_client, mt5_terminal):
    def start(slots: str = "C:/MT5/slot-1"):
        return start_process(
            "mt5-farm",
            [PYTHON, "manage.py", "mt5_farm"],
            MT5_TERMINAL_SLOTS=slots,
            MT5_AGENT_ENV=json.dumps(mt5_terminal.env),
            MT5_POLL_MS="5",
        )

    return start


def link(client, password=PASSWORD, label="My MT5", role="follower", server="StandIn-Demo"):
    response = client.post(
        "/brokers/link/mt5/",
        {"label": label, "role": role, "login": LOGIN, "password": password, "server": server},
    )
    assert response.status_code == 302, response.content.decode()
    return LinkRequest.objects.latest("id")


def decided(request: LinkRequest) -> LinkRequest | None:
    request.refresh_from_db()
    return request if request.done else None
