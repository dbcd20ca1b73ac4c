"""The MT5 farm: terminal slots, agent processes, logins, and what agents report.

`manage.py mt5_farm` runs one `Farm`. Each step:

1. **Assigns slots.** A pending MT5 link request gets a free terminal slot
   (a folder from `MT5_TERMINAL_SLOTS`) and a fresh agent token; with none free
   the request fails at once with "no free terminal slot".
2. **Supervises agents.** Every slot in use has a running agent process
   (`MT5_AGENT_COMMAND --agent ID --terminal SLOT --hub REDIS_URL`, the token
   on standard input). One that exits is started again, with backoff.
3. **Handles events** from `mt5:evt` (consumer group ``farm``):
   - ``hello``: the agent (re)started, so it gets the ``login`` command with
     the sealed password and, for a master, the last reported snapshot;
   - ``login_result``: for a link request, the account is created (or the
     request fails with the terminal's reason and the slot is freed); for a
     linked account, the status says so;
   - ``status``: connection, server, ping, for the account page and the
     operations page;
   - ``state`` and ``master``: a master's snapshot (kept for the next login)
     and its changes, numbered into the copier outbox in one transaction and
     put on the copier stream.
   ``result`` events belong to the copier daemon, which sent the commands.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from brokers.linking import fail_link as fail
from brokers.models import BrokerAccount, LinkRequest, Mt5Agent, Role, Venue
from brokers.mt5 import protocol
from copier.core import EventKind, OrderType, Side
from copier.core.events import EventDraft
from copier.models import MasterEventRecord
from copier.outbox import append_events, bump_links_version

log = logging.getLogger("mt5.farm")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
LINK_TIMEOUT_S = 60.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def mt5_credentials(account_or_request: BrokerAccount | LinkRequest) -> dict[str, Any]:
    return dict(json.loads(account_or_request.credentials or "{}"))


@dataclass
class Child:
    popen: subprocess.Popen[bytes]
    started: float
    failures: int = 0


@dataclass
class Farm:
    client: redis.Redis
    slots: list[str] = field(default_factory=lambda: list(settings.MT5_TERMINAL_SLOTS))
    children: dict[str, Child] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)
    # A stable name: events a dead farm read but did not finish are read again.
    consumer: str = field(default_factory=lambda: os.environ.get("MT5_FARM_NAME", "farm-1"))

    # -- lifecycle -------------------------------------------------------------------

    def setup(self) -> None:
        try:
            self.client.xgroup_create(protocol.EVENT_STREAM, "farm", id="$", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self.stop_orphans()
        self.handle_events(block_ms=0, backlog=True)

    def stop_orphans(self) -> None:
        """Agents a dead farm left running: one terminal must never have two agents."""
        for agent in Mt5Agent.objects.exclude(pid=None):
            try:
                with open(f"/proc/{agent.pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if b"brokers.mt5.agent" in cmdline and agent.agent_id.encode() in cmdline:
                log.warning("stopping agent %s left by an earlier farm", agent.agent_id)
                with contextlib.suppress(OSError):
                    os.kill(agent.pid, signal.SIGTERM)

    def step(self, block_ms: int = 200) -> None:
        self.assign_slots()
        self.supervise()
        self.handle_events(block_ms)
        self.expire_link_requests()

    def stop_all(self) -> None:
        for child in list(self.children.values()):
            if child.popen.poll() is None:
                child.popen.terminate()
        for child in self.children.values():
            try:
                child.popen.wait(10)
            except subprocess.TimeoutExpired:
                child.popen.kill()
        self.children.clear()

    # -- slots -------------------------------------------------------------------------

    def free_slot(self) -> str | None:
        used = set(Mt5Agent.objects.values_list("slot", flat=True))
        return next((slot for slot in self.slots if slot not in used), None)

    def assign_slots(self) -> None:
        pending = LinkRequest.objects.filter(
            venue=Venue.MT5, status=LinkRequest.Status.PENDING
        ).order_by("id")
        for request in pending:
            slot = self.free_slot()
            if slot is None:
                fail(
                    request,
                    "No free terminal slot: every MetaTrader 5 terminal of this installation "
                    "is in use. Nothing was linked; staff have been told.",
                )
                log.warning("MT5 link request %s: no free terminal slot", request.pk)
                continue
            try:
                Mt5Agent.objects.create(
                    agent_id=f"mt5-{secrets.token_hex(6)}",
                    slot=slot,
                    link_request=request,
                    token=secrets.token_urlsafe(32),
                )
            except IntegrityError:
                continue  # another farm took the slot; try again next step
            LinkRequest.objects.filter(pk=request.pk).update(
                status=LinkRequest.Status.RUNNING, progress="Starting a terminal for you…"
            )

    # -- processes -----------------------------------------------------------------------

    def supervise(self) -> None:
        wanted = {a.agent_id: a for a in Mt5Agent.objects.exclude(status=Mt5Agent.Status.STOPPED)}
        for agent_id in list(self.children):
            if agent_id not in wanted:
                self.stop_child(agent_id)
        for agent_id, agent in wanted.items():
            child = self.children.get(agent_id)
            if child is not None and child.popen.poll() is None:
                continue
            if time.monotonic() < self.not_before.get(agent_id, 0):
                continue
            failures = 0
            if child is not None:
                code = child.popen.returncode
                failures = child.failures + (1 if time.monotonic() - child.started < 60 else 0)
                log.warning("agent %s exited with %s; starting it again", agent_id, code)
                Mt5Agent.objects.filter(pk=agent.pk).update(
                    restarts=F("restarts") + 1,
                    status=Mt5Agent.Status.STARTING,
                    detail=f"the agent exited with code {code}; restarted",
                )
            delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            self.not_before[agent_id] = time.monotonic() + delay
            self.children[agent_id] = self.start(agent, failures)

    def start(self, agent: Mt5Agent, failures: int) -> Child:
        command = [
            *settings.MT5_AGENT_COMMAND,
            "--agent",
            agent.agent_id,
            "--terminal",
            agent.slot,
            "--hub",
            settings.REDIS_URL,
            "--poll-ms",
            str(settings.MT5_POLL_MS),
            "--token-stdin",
        ]
        env = {**os.environ, **settings.MT5_AGENT_ENV}
        popen = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
        assert popen.stdin is not None
        popen.stdin.write((agent.token + "\n").encode())
        popen.stdin.close()
        Mt5Agent.objects.filter(pk=agent.pk).update(pid=popen.pid)
        log.info("started agent %s for slot %s (pid %d)", agent.agent_id, agent.slot, popen.pid)
        return Child(popen, time.monotonic(), failures)

    def stop_child(self, agent_id: str) -> None:
        child = self.children.pop(agent_id, None)
        if child is not None and child.popen.poll() is None:
            child.popen.terminate()
            try:
                child.popen.wait(10)
            except subprocess.TimeoutExpired:
                child.popen.kill()

    # -- events ------------------------------------------------------------------------

    def handle_events(self, block_ms: int, backlog: bool = False) -> None:
        reply = self.client.xreadgroup(
            "farm",
            self.consumer,
            {protocol.EVENT_STREAM: "0" if backlog else ">"},
            count=1000,
            block=None if backlog else block_ms,
        )
        tokens = {a.agent_id: a.token for a in Mt5Agent.objects.all()}
        for _, entries in reply or []:
            for msg_id, fields in entries:
                self.handle(fields, tokens)
                self.client.xack(protocol.EVENT_STREAM, "farm", msg_id)

    def handle(self, fields: dict[str, str], tokens: dict[str, str]) -> None:
        token = tokens.get(fields.get("agent", ""))
        if token is None:
            return
        try:
            event = protocol.open_message(fields, token, now_ms(), kinds=protocol.EVENTS)
        except protocol.ProtocolError as e:
            log.warning("refused an event from %s: %s", fields.get("agent"), e)
            return
        agent = Mt5Agent.objects.select_related("account", "link_request").get(agent_id=event.agent)
        match event.kind:
            case "hello":
                self.send_login(agent, token)
            case "login_result":
                self.logged_in(agent, event.body)
            case "status":
                self.status(agent, event.body)
            case "state":
                Mt5Agent.objects.filter(pk=agent.pk).update(baseline=event.body)
            case "master":
                if agent.account is not None and agent.account.can_lead:
                    self.record_master(agent.account, event)

    def send(self, agent: Mt5Agent, token: str, kind: str, body: dict[str, Any]) -> str:
        message = protocol.Message(kind, agent.agent_id, now_ms(), body)
        stream = protocol.COMMAND_STREAM.format(agent=agent.agent_id)
        self.client.xadd(stream, protocol.seal(message, token), maxlen=10_000)
        return message.id

    def send_login(self, agent: Mt5Agent, token: str) -> None:
        source = agent.account or agent.link_request
        if source is None:
            return
        creds = mt5_credentials(source)
        role = source.role
        body = {
            "login": int(creds["login"]),
            "password": protocol.seal_secret(token, str(creds["password"])),
            "server": creds["server"],
            "role": role,
            "baseline": agent.baseline or None if role != Role.FOLLOWER else None,
        }
        self.send(agent, token, "login", body)
        Mt5Agent.objects.filter(pk=agent.pk).update(
            status=Mt5Agent.Status.LOGGING_IN, detail=f"logging in to {creds['server']}"
        )
        if agent.link_request is not None and agent.account is None:
            LinkRequest.objects.filter(pk=agent.link_request.pk).update(
                progress=f"Logging in to {creds['server']}…"
            )

    def logged_in(self, agent: Mt5Agent, body: dict[str, Any]) -> None:
        request = agent.link_request
        if body.get("ok"):
            if agent.account is None and request is not None:
                link_account(agent, request, body)
            Mt5Agent.objects.filter(pk=agent.pk).update(
                status=Mt5Agent.Status.CONNECTED,
                server=body.get("server", ""),
                trade_allowed=bool(body.get("trade_allowed", True)),
                symbols=body.get("symbols") or {},
                detail="",
            )
            return
        message = explain_login(body)
        if agent.account is None and request is not None:
            fail(request, message)
            agent.delete()  # the slot is free again; the supervisor stops the process
            return
        Mt5Agent.objects.filter(pk=agent.pk).update(status=Mt5Agent.Status.REFUSED, detail=message)

    def status(self, agent: Mt5Agent, body: dict[str, Any]) -> None:
        changes: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if body.get("logged_in") and body.get("connected") is not False:
            changes["status"] = Mt5Agent.Status.CONNECTED
            changes["detail"] = ""
        elif body.get("connected") is False or (agent.status == Mt5Agent.Status.CONNECTED):
            changes["status"] = Mt5Agent.Status.DISCONNECTED
            changes["detail"] = str(body.get("why") or "the terminal lost its connection")[:300]
        if body.get("stopped"):
            changes["status"] = Mt5Agent.Status.REFUSED
        if body.get("server"):
            changes["server"] = body["server"]
        if body.get("ping_ms") is not None:
            changes["ping_ms"] = Decimal(str(body["ping_ms"]))
        Mt5Agent.objects.filter(pk=agent.pk).update(**changes)

    def record_master(self, account: BrokerAccount, event: protocol.Message) -> None:
        body = event.body
        if MasterEventRecord.objects.filter(account=account, external_id=event.id).exists():
            return  # delivered again after a farm restart: recorded already

        def dec(name: str) -> Decimal | None:
            value = body.get(name)
            return None if value in (None, "") else Decimal(str(value))

        draft = EventDraft(
            kind=EventKind(body["kind"]),
            master_ref=str(body["master_ref"]),
            symbol=str(body["symbol"]),
            side=Side(body["side"]),
            volume=Decimal(str(body["volume"])),
            price=Decimal(str(body["price"])),
            ts_ms=int(body["ts_ms"]),
            order_type=OrderType(body.get("order_type") or "market"),
            sl=dec("sl"),
            tp=dec("tp"),
            remaining_volume=dec("remaining_volume"),
            position_ref=body.get("position_ref"),
        )
        with transaction.atomic():
            [(record_id, payload)] = append_events(
                account.pk,
                [draft],
                master_balance=dec("balance"),
                master_equity=dec("equity"),
                contract_sizes={draft.symbol: dec("contract_size")},
                external_id=event.id,
            )
        try:
            self.client.xadd(settings.COPIER_STREAM, payload)
            MasterEventRecord.objects.filter(pk=record_id).update(published_at=timezone.now())
        except redis.RedisError as e:
            log.warning("master event waits in the outbox: %s", e)

    def expire_link_requests(self) -> None:
        cutoff = timezone.now() - timezone.timedelta(seconds=LINK_TIMEOUT_S)
        stuck = Mt5Agent.objects.filter(
            account=None, link_request__isnull=False, updated_at__lt=cutoff
        ).select_related("link_request")
        for agent in stuck:
            if agent.link_request is not None:
                fail(
                    agent.link_request,
                    "The terminal did not answer within a minute. Nothing was linked; "
                    "try again, and tell support if it happens again.",
                )
            agent.delete()


def explain_login(body: dict[str, Any]) -> str:
    message = str(body.get("message", ""))
    if body.get("error") == "CredentialsRejected":
        if "server" in message:
            return (
                "The terminal does not know that server name. Copy it exactly as your "
                f"broker writes it (for example “ICMarketsSC-Demo”). ({message})"
            )
        return (
            "The broker refused the login: a wrong login or password, or a server name it "
            f"does not know. Check all three exactly as your broker writes them. ({message})"
        )
    return f"The terminal could not log in: {message}"


@transaction.atomic
def link_account(agent: Mt5Agent, request: LinkRequest, body: dict[str, Any]) -> None:
    creds = mt5_credentials(request)
    read_only = not body.get("trade_allowed", True)
    if read_only and request.role != Role.MASTER:
        fail(
            request,
            "That is the investor (read-only) password: it can only lead. Link the account "
            "as a master, or use the master password to follow.",
        )
        agent.delete()
        return
    try:
        account = BrokerAccount.objects.create(
            owner_id=request.owner_id,
            venue=Venue.MT5,
            label=request.label,
            role=request.role,
            currency=str(body.get("currency", ""))[:8],
            credentials=request.credentials,
            credentials_hint=str(creds["login"])[-4:],
        )
    except IntegrityError:
        fail(request, f"You already have an account labelled “{request.label}”.")
        agent.delete()
        return
    Mt5Agent.objects.filter(pk=agent.pk).update(account=account)
    warnings = []
    if read_only:
        warnings.append(
            "Linked with the investor (read-only) password: this account can lead, and "
            "the copier watches it, but it cannot follow or place trades."
        )
    LinkRequest.objects.filter(pk=request.pk).update(
        status=LinkRequest.Status.SUCCEEDED,
        account=account,
        credentials="",
        progress="",
        message=f"Linked: {body.get('name') or creds['login']} on {body.get('server')}.",
        warnings="\n".join(warnings),
    )
    bump_links_version()
