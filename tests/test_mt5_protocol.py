"""The terminal agent protocol: signed, versioned, fresh, and only the known message kinds."""

import pytest

from brokers.mt5.protocol import (
    MAX_SKEW_MS,
    Message,
    ProtocolError,
    open_message,
    open_secret,
    seal,
    seal_secret,
)

TOKEN = "agent-token-0123456789abcdef"
NOW = 1_800_000_000_000


def sealed(**overrides) -> dict[str, str]:
    message = Message("execute", "agent-1", NOW, {"coid": "TS" + "0" * 24, "volume": "0.10"})
    return {**seal(message, TOKEN), **overrides}


def test_a_sealed_message_opens_to_the_same_message():
    message = Message("execute", "agent-1", NOW, {"coid": "TS1", "volume": "0.10"})
    opened = open_message(seal(message, TOKEN), TOKEN, NOW + 5, expect_agent="agent-1")
    assert opened == message


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"body": '{"coid":"TS1","volume":"10.00"}'}, "bad signature"),
        ({"kind": "stop"}, "bad signature"),
        ({"ts": str(NOW + 1)}, "bad signature"),
        ({"sig": "0" * 64}, "bad signature"),
        ({"v": "2"}, "unsupported protocol version '2'"),
    ],
)
def test_a_changed_message_is_refused(change, reason):
    with pytest.raises(ProtocolError, match=reason):
        open_message(sealed(**change), TOKEN, NOW)


def test_another_token_is_refused():
    with pytest.raises(ProtocolError, match="bad signature"):
        open_message(sealed(), "someone-elses-token", NOW)


def test_a_message_for_another_agent_is_refused():
    with pytest.raises(ProtocolError, match="for agent 'agent-1', not 'agent-2'"):
        open_message(sealed(), TOKEN, NOW, expect_agent="agent-2")


def test_an_old_message_cannot_be_replayed_later():
    open_message(sealed(), TOKEN, NOW + MAX_SKEW_MS)
    with pytest.raises(ProtocolError, match="stale message"):
        open_message(sealed(), TOKEN, NOW + MAX_SKEW_MS + 1)


def test_only_expected_kinds_are_accepted():
    with pytest.raises(ProtocolError, match="unexpected message kind 'execute'"):
        open_message(sealed(), TOKEN, NOW, kinds=frozenset({"result"}))
    with pytest.raises(ProtocolError, match="unknown message kind 'eval'"):
        seal(Message("eval", "agent-1", NOW, {"code": "print(1)"}), TOKEN)


def test_secrets_travel_encrypted_and_only_the_token_opens_them():
    box = seal_secret(TOKEN, "hunter2-password")
    assert "hunter2" not in box
    assert open_secret(TOKEN, box) == "hunter2-password"
    with pytest.raises(ProtocolError, match="another token"):
        open_secret("other-token", box)
