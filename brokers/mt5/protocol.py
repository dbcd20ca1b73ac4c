"""The terminal agent protocol: a narrow, versioned, authenticated message set.

Agents (one per MetaTrader 5 terminal) and the hub (the copier side) talk
over Redis streams, never by executing code they receive:

- ``mt5:cmd:<agent>``: commands from the hub to one agent, read through a
  consumer group so a command the agent did not finish is delivered again
  after a restart;
- ``mt5:evt``: events from every agent to the hub.

Every message is a flat map of strings: ``v`` (the protocol version),
``kind`` (one of `COMMANDS` or `EVENTS`; anything else is refused),
``agent``, ``id`` (unique per message), ``reply_to`` (a command's id, on
results), ``ts`` (milliseconds since the epoch), ``body`` (JSON) and ``sig``,
the hex HMAC-SHA256 over all the others, keyed by the agent's token. A
message with a bad signature, another agent's name, an unknown kind or a
timestamp outside `MAX_SKEW_MS` is refused, so a message cannot be forged
or replayed later. Replays within the window are harmless: commands carry
ids the agent remembers, and every order carries our client order id, which
the agent looks for in the terminal before sending anything.

Secrets (the trading account's password) travel encrypted inside the body
(`seal_secret`), with a key derived from the agent's token, so they never
sit in Redis, a file or a log in plain text.

This module is pure: the agent imports it without Django.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

VERSION = "1"
MAX_SKEW_MS = 30_000
COMMAND_STREAM = "mt5:cmd:{agent}"
EVENT_STREAM = "mt5:evt"
AGENT_GROUP = "agent"
HUB_GROUP = "hub"

# hub -> agent
COMMANDS = frozenset({"login", "execute", "find", "status", "stop"})
# agent -> hub
EVENTS = frozenset({"hello", "status", "login_result", "result", "master", "state"})

_SIGNED = ("v", "kind", "agent", "id", "reply_to", "ts", "body")


class ProtocolError(Exception):
    """A message that must not be acted on; the reason is safe to log."""


@dataclass(frozen=True, slots=True)
class Message:
    kind: str
    agent: str
    ts_ms: int
    body: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reply_to: str = ""


def _canonical(fields: dict[str, str]) -> bytes:
    return "\n".join(f"{k}={fields.get(k, '')}" for k in _SIGNED).encode()


def _signature(token: str, fields: dict[str, str]) -> str:
    return hmac.new(token.encode(), _canonical(fields), hashlib.sha256).hexdigest()


def seal(message: Message, token: str) -> dict[str, str]:
    """The wire form of a message, signed with the agent's token."""
    if message.kind not in COMMANDS | EVENTS:
        raise ProtocolError(f"unknown message kind {message.kind!r}")
    fields = {
        "v": VERSION,
        "kind": message.kind,
        "agent": message.agent,
        "id": message.id,
        "reply_to": message.reply_to,
        "ts": str(message.ts_ms),
        "body": json.dumps(message.body, separators=(",", ":"), sort_keys=True),
    }
    fields["sig"] = _signature(token, fields)
    return fields


def open_message(
    fields: dict[str, str],
    token: str,
    now_ms: int,
    expect_agent: str | None = None,
    kinds: frozenset[str] = COMMANDS | EVENTS,
) -> Message:
    """Check a wire message and return it; raise `ProtocolError` saying why not."""
    if fields.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {fields.get('v')!r}")
    if not hmac.compare_digest(fields.get("sig", ""), _signature(token, fields)):
        raise ProtocolError("bad signature")
    kind = fields.get("kind", "")
    if kind not in kinds:
        raise ProtocolError(f"unexpected message kind {kind!r}")
    agent = fields.get("agent", "")
    if expect_agent is not None and agent != expect_agent:
        raise ProtocolError(f"message for agent {agent!r}, not {expect_agent!r}")
    try:
        ts_ms = int(fields.get("ts", ""))
        body = json.loads(fields.get("body", "{}"))
    except ValueError as e:
        raise ProtocolError(f"malformed message: {e}") from None
    if not isinstance(body, dict):
        raise ProtocolError("the body must be a JSON object")
    if abs(now_ms - ts_ms) > MAX_SKEW_MS:
        raise ProtocolError(f"stale message ({(now_ms - ts_ms) / 1000:.1f} s old)")
    return Message(kind, agent, ts_ms, body, fields.get("id", ""), fields.get("reply_to", ""))


def _fernet(token: str) -> Fernet:
    key = hashlib.sha256(b"tradosphere-mt5-secret:" + token.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal_secret(token: str, secret: str) -> str:
    return _fernet(token).encrypt(secret.encode()).decode()


def open_secret(token: str, sealed: str) -> str:
    try:
        return _fernet(token).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise ProtocolError("a secret sealed with another token") from None
