"""The real terminal agent process (`python -m brokers.mt5.agent`) against the
MetaTrader5 TEST STAND-IN (tests/mt5_standin: the Windows-only package's documented
functions over a terminal state file), with this test playing the hub over Redis."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
import redis
from django.conf import settings

from brokers.mt5 import protocol
from tests.conftest import wait_for
from tests.mt5_standin.control import Terminal

LOGIN, PASSWORD, INVESTOR = 5001, "master-pw", "investor-pw"
ROOT = Path(__file__).resolve().parents[1]
COID = "TS" + "AB" * 12


class Hub:
    """The hub's side of the protocol, for one agent."""

    def __init__(self, client: redis.Redis, agent: str, token: str) -> None:
        self.client, self.agent, self.token = client, agent, token
        self.last = "0"
        self.seen: list[protocol.Message] = []

    def send(self, kind: str, body: dict, token: str | None = None, **fields) -> str:
        message = protocol.Message(kind, self.agent, time.time_ns() // 1_000_000, body, **fields)
        stream = protocol.COMMAND_STREAM.format(agent=self.agent)
        self.client.xadd(stream, protocol.seal(message, token or self.token))
        return message.id

    def pump(self) -> None:
        for _, entries in self.client.xread({protocol.EVENT_STREAM: self.last}, block=50) or []:
            for msg_id, fields in entries:
                self.last = msg_id
                now = time.time_ns() // 1_000_000
                self.seen.append(protocol.open_message(fields, self.token, now, self.agent))

    def wait(self, kind: str, reply_to: str | None = None, where=lambda m: True, after: int = 0):
        def found():
            self.pump()
            for m in self.seen[after:]:
                if m.kind == kind and (reply_to is None or m.reply_to == reply_to) and where(m):
                    return m
            return None

        return wait_for(found, what=f"a {kind} event")

    def events(self, kind: str) -> list[protocol.Message]:
        self.pump()
        return [m for m in self.seen if m.kind == kind]

    def login(self, role: str = "follower", password: str = PASSWORD, baseline=None):
        body = {
            "login": LOGIN,
            "password": protocol.seal_secret(self.token, password),
            "server": "StandIn-Demo",
            "role": role,
            "baseline": baseline,
        }
        return self.wait("login_result", self.send("login", body))


@pytest.fixture
def terminal(tmp_path):
    term = Terminal(tmp_path / "terminal.json")
    term.configure(accounts=[{"login": LOGIN, "password": PASSWORD, "investor_password": INVESTOR}])
    return term


@pytest.fixture
def agent(terminal, redis_client, tmp_path):
    """Start (and restart) the real agent process; yields (hub, start)."""
    agent_id, token = "agent-" + secrets.token_hex(4), secrets.token_hex(16)
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        env = {**os.environ, **terminal.env, "MT5_AGENT_TOKEN": token}
        env["PYTHONPATH"] = os.pathsep.join([terminal.env["PYTHONPATH"], str(ROOT)])
        log = (tmp_path / f"agent-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "brokers.mt5.agent",
                "--agent",
                agent_id,
                "--hub",
                settings.REDIS_URL,
                "--poll-ms",
                "5",
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    hub = Hub(redis_client, agent_id, token)
    yield hub, start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


def execute(hub: Hub, coid: str, action="open", side="buy", volume="0.10", ref=None, **kw):
    order = {
        "action": action,
        "symbol": "EURUSD",
        "side": side,
        "volume": volume,
        "reference_price": "1.08",
        "ref": ref,
        **kw,
    }
    return hub.send("execute", {"coid": coid, "order": order})


def test_a_wrong_password_is_refused_in_words_the_site_can_show(agent):
    hub, start = agent
    start()
    hub.wait("hello")
    result = hub.login(password="Not-The-Password-42")
    assert result.body["ok"] is False
    assert result.body["error"] == "CredentialsRejected"
    assert "wrong login or password" in result.body["message"]
    assert "Not-The-Password-42" not in str(hub.seen)  # the password is never echoed


def test_an_order_is_sent_once_however_often_the_command_arrives(agent, terminal):
    hub, start = agent
    start()
    hub.wait("hello")
    assert hub.login().body["ok"] is True
    first = execute(hub, COID)
    answer = hub.wait("result", first).body
    assert "report" in answer, answer
    report = answer["report"]
    assert report["ref"].startswith("P") and report["created"] is True
    assert D(report["volume"]) == D("0.1")
    # The same command again (a replay), then the same order id in a new command.
    hub.client.xadd(
        protocol.COMMAND_STREAM.format(agent=hub.agent),
        protocol.seal(
            protocol.Message(
                "execute", hub.agent, time.time_ns() // 10**6, {"coid": COID, "order": {}}, id=first
            ),
            hub.token,
        ),
    )
    again = execute(hub, COID)
    found = hub.wait("result", again).body["report"]
    assert (found["ref"], found["created"]) == (report["ref"], False)
    assert len(hub.events("result")) >= 2
    positions = terminal.positions(LOGIN)
    assert len(positions) == 1 and positions[0]["comment"] == COID
    assert len([r for r in terminal.requests() if r["request"].get("comment") == COID]) == 1


def test_a_forged_command_is_refused_and_nothing_is_traded(agent, terminal):
    hub, start = agent
    start()
    hub.wait("hello")
    hub.login()
    order = {
        "action": "open",
        "symbol": "EURUSD",
        "side": "buy",
        "volume": "1",
        "reference_price": "1.08",
    }
    hub.send("execute", {"coid": COID, "order": order}, token="not-the-agent-token")
    status = hub.wait("status", where=lambda m: m.body.get("refused"))
    assert status.body["why"] == "bad signature"
    assert terminal.positions(LOGIN) == []


def test_a_master_is_watched_and_a_restart_reports_what_happened_while_down(agent, terminal):
    hub, start = agent
    proc = start()
    hub.wait("hello")
    hub.login(role="master")
    ticket = terminal.trade_by_hand(LOGIN, "EURUSD", "buy", "0.20")
    opened = hub.wait("master", where=lambda m: m.body["kind"] == "position_opened")
    assert (opened.body["master_ref"], opened.body["volume"]) == (f"P{ticket}", "0.2")
    state = hub.wait("state", where=lambda m: m.body["positions"])

    os.killpg(proc.pid, signal.SIGKILL)  # the agent crashes
    proc.wait(5)
    terminal.close_by_hand(ticket, "0.05")  # a partial close while no agent runs
    mark = len(hub.seen)
    start()
    hub.wait("hello", after=mark)
    hub.login(role="master", baseline=state.body)
    reduced = hub.wait(
        "master", where=lambda m: m.body["kind"] == "position_partially_closed", after=mark
    )
    assert (reduced.body["volume"], reduced.body["remaining_volume"]) == ("0.05", "0.15")
    # Nothing was reported twice: one open in all.
    assert [m.body["kind"] for m in hub.events("master")].count("position_opened") == 1


def test_a_lost_terminal_connection_is_reported_and_orders_say_the_outcome_is_unknown(
    agent, terminal
):
    hub, start = agent
    start()
    hub.wait("hello")
    hub.login()
    terminal.disconnect()
    hub.wait("status", where=lambda m: m.body.get("connected") is False or m.body.get("why"))
    result = hub.wait("result", execute(hub, COID)).body
    assert result["error"] in ("VenueUnavailable", "TemporaryVenueError")
    assert terminal.positions(LOGIN) == []
    terminal.reconnect()
    hub.wait("status", where=lambda m: m.body.get("connected") is True, after=len(hub.seen))
    report = hub.wait("result", execute(hub, COID)).body["report"]
    assert report["created"] is True and len(terminal.positions(LOGIN)) == 1


def test_an_order_sent_just_before_a_crash_is_found_not_sent_again(agent, terminal):
    """The command is delivered again after the restart; the order it already placed
    (our id in its comment) is found in the terminal and answered, not repeated."""
    hub, start = agent
    proc = start()
    hub.wait("hello")
    hub.login()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)
    # What the dead agent had done: the order is in the terminal with our id...
    terminal.trade_by_hand(LOGIN, "EURUSD", "buy", "0.10", comment=COID)
    # ...and its command is still undelivered (it died before answering).
    command = execute(hub, COID)
    mark = len(hub.seen)
    start()
    hub.wait("hello", after=mark)
    hub.login()
    answer = hub.wait("result", command).body
    assert answer["report"]["created"] is False
    assert len(terminal.positions(LOGIN)) == 1
    assert not [r for r in terminal.requests() if r["request"].get("comment") == COID]


def test_a_lost_reply_is_an_unknown_outcome_and_the_retry_finds_the_order(agent, terminal):
    hub, start = agent
    start()
    hub.wait("hello")
    hub.login()
    terminal.fail_next_order_send(executed=True)  # carried out, but no answer came back
    first = hub.wait("result", execute(hub, COID)).body
    assert (first["error"], first["outcome_unknown"]) == ("VenueUnavailable", True)
    again = hub.wait("result", execute(hub, COID)).body["report"]
    assert again["created"] is False
    assert len(terminal.positions(LOGIN)) == 1
