"""SIGKILL the copier again and again: followers still end exactly as in a clean run."""

import random
import signal
from decimal import Decimal as D

import pytest
from django.conf import settings

from brokers.models import PaperAccount, PaperPosition, PaperRequest, Role
from brokers.venues import paper
from copier.core import Side
from copier.models import Execution, PositionLink
from copier.outbox import publish_pending
from tests.conftest import wait_for
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db(transaction=True)

FOLLOWERS = 20
KILLS = 10


def script(master):
    """The master's trading: opens, SL/TP changes, partial closes and closes.

    Returns one list of actions per wave; each action runs on the Paper venue
    and writes the master event to the outbox.
    """
    n = iter(range(1, 10_000))
    refs: dict[int, str] = {}

    def op(i, symbol, side, volume, price):
        def run():
            refs[i] = paper.open_position(
                master.pk, symbol, side, D(volume), D(price), f"C{next(n)}", sl=None
            ).ref

        return run

    def modify(i, sl):
        return lambda: paper.modify_position(master.pk, refs[i], D(sl), None, f"C{next(n)}")

    def part(i, volume, price):
        return lambda: paper.close_position(
            master.pk, refs[i], D(price), f"C{next(n)}", volume=D(volume)
        )

    def close(i, price):
        return lambda: paper.close_position(master.pk, refs[i], D(price), f"C{next(n)}")

    return [
        [op(0, "XAUUSD", Side.BUY, "2", "2350"), op(1, "EURUSD", Side.SELL, "3", "1.0850")],
        [modify(0, "2340"), op(2, "BTCUSD", Side.BUY, "1", "65000")],
        [part(0, "0.5", "2355"), modify(1, "1.0900")],
        [part(1, "1", "1.0840"), op(3, "XAUUSD", Side.BUY, "1", "2356")],
        [part(0, "0.5", "2358"), close(2, "65500")],
        [op(4, "US500", Side.SELL, "5", "5100"), modify(3, "2345")],
        [close(3, "2360"), part(4, "2", "5090")],
        [part(1, "1", "1.0830"), modify(0, "2345")],
        [close(4, "5080"), op(5, "ETHUSD", Side.BUY, "4", "3500")],
        [part(5, "1", "3510"), modify(5, "3450")],
        [part(5, "1", "3520")],
    ]


def build(tag):
    user = make_user(f"{tag}@example.com")
    master = make_paper(user, f"{tag}-master", role=Role.MASTER)
    followers = [make_paper(user, f"{tag}-f{i:02d}") for i in range(FOLLOWERS)]
    for i, follower in enumerate(followers):
        # Multipliers from 0.5 to 2.4 give different volumes and partial-close roundings.
        make_link(master, follower, str(D("0.5") + D("0.1") * i))
    return master, followers


def snapshot(master, followers):
    """Everything a follower holds, keyed by the master position's place in the script."""
    master_order = {
        f"P{pk}": i
        for i, pk in enumerate(
            PaperPosition.objects.filter(account=master).order_by("id").values_list("pk", flat=True)
        )
    }
    result = []
    for follower in followers:
        copies = {
            pl.follower_ref: master_order[pl.master_ref]
            for pl in PositionLink.objects.filter(link__follower=follower)
        }
        positions = sorted(
            (
                copies.get(f"P{p.pk}", "unlinked"),
                p.side,
                p.volume,
                p.open_price,
                p.sl,
                p.tp,
                p.closed_at is None,
                p.close_price,
                p.realized_pnl,
            )
            for p in PaperPosition.objects.filter(account=follower)
        )
        requests = sorted(
            PaperRequest.objects.filter(account=follower).values_list("action", "volume", "price")
        )
        result.append((positions, requests, PaperAccount.objects.get(account=follower).balance))
    return result


def drained(redis_client):
    groups = redis_client.xinfo_groups(settings.COPIER_STREAM)
    info = redis_client.xinfo_stream(settings.COPIER_STREAM)
    group = next(g for g in groups if g["name"] == settings.COPIER_GROUP)
    return group["pending"] == 0 and group["last-delivered-id"] == info["last-generated-id"]


def run_clean(copier_daemon, redis_client):
    master, followers = build("clean")
    proc = copier_daemon()
    for wave in script(master):
        for action in wave:
            action()
    publish_pending()
    wait_for(lambda: drained(redis_client), timeout_s=60, what="the clean run to finish")
    proc.kill(signal.SIGTERM)
    return snapshot(master, followers)


def test_sigkill_at_random_moments_changes_nothing(copier_daemon, redis_client):
    expected = run_clean(copier_daemon, redis_client)
    master, followers = build("crash")
    rng = random.Random(20261121)
    executions = Execution.objects.filter(link__master=master)
    kills = 0
    for wave in script(master):
        proc = copier_daemon()
        for action in wave:
            action()
        # A random moment: after some random share of this wave's follower orders.
        target = executions.count() + rng.randint(0, len(wave) * FOLLOWERS - 1)
        publish_pending()
        wait_for(
            lambda t=target: executions.count() >= t or drained(redis_client),
            timeout_s=30,
            what="the daemon to make progress",
        )
        proc.kill(signal.SIGKILL)
        kills += 1
    assert kills >= KILLS
    copier_daemon()
    wait_for(lambda: drained(redis_client), timeout_s=60, what="the recovered run to finish")

    got = snapshot(master, followers)
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"follower {i} differs from the clean run"
    assert not redis_client.hgetall("copier:intents")
    # Every follower order went out once: one execution per (link, event).
    assert executions.count() == len(set(executions.values_list("link", "seq")))
