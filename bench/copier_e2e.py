"""End to end: master event published -> all 100 follower fills recorded.

Runs the real copier process (`manage.py run_copier`) against PostgreSQL and
Redis from tests/services.sh, with one Paper master and 100 Paper followers.
Each master event is made the way the site makes it: the real Paper venue
(`brokers.venues.paper.open_position` / `close_position`) fills the master
and writes the outbox record in one transaction, then
`copier.outbox.publish_pending(master)` XADDs it, as the trade ticket's view
does. The clock starts right before that publish call.

The clock stops when the daemon's `copier.update` message for the event
reaches this process through the Channels layer (the same push the dashboard
gets). The daemon sends it only after `ledger.record()` has committed the
event's executions and position links, so it is an exact "all fills
recorded" signal, read on the same monotonic clock (CLOCK_MONOTONIC is one
clock for every process on Linux, so the daemon's Execution.t_*_ns stamps
line up with this process's and give the phase breakdown).

Sequential: each event's fills are awaited before the next is sent; events
alternate open / close over a few symbols. With --burst K (default 20), a
burst follows: K opens published in one go, then their K closes; each
event's latency there is measured from the start of its burst's publish.

Run: .venv/bin/python bench/copier_e2e.py [--events 200] [--burst 20]
Prints one JSON object per line on stdout ("e2e", then "e2e_burst"); logs to
stderr. The database `tradosphere_bench` is created fresh (and dropped at the
end unless --keep-db); Redis database 11 is flushed. Whatever service the
run started, and the daemon, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

from _common import (
    PYTHON,
    ROOT,
    SYMBOLS,
    Services,
    bench_env,
    drop_database,
    emit,
    load_average,
    log,
    make_master_and_followers,
    migrate,
    recreate_database,
    setup_django,
    summary,
)

DB_NAME = "tradosphere_bench"
REDIS_DB = 11
FOLLOWERS = 100
WARMUP_EVENTS = 10
EVENT_TIMEOUT_S = 60.0


class Listener:
    """Receives the daemon's `copier.update` pushes for one user, on its own thread.

    Each message is queued with the monotonic time it arrived.
    """

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.messages: queue.Queue[tuple[int, dict[str, object]]] = queue.Queue()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, name="listener", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(10) or self.error:
            raise RuntimeError(f"the Channels listener did not start: {self.error!r}")

    def _run(self) -> None:
        import uvloop

        try:
            uvloop.run(self._listen())
        except BaseException as e:
            self.error = e
            self.ready.set()

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        from copier.notify import user_group

        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        layer = get_channel_layer()
        assert layer is not None
        channel = await layer.new_channel()
        await layer.group_add(user_group(self.user_id), channel)
        self.ready.set()
        try:
            while True:
                message = await layer.receive(channel)
                self.messages.put((time.monotonic_ns(), message))
        except asyncio.CancelledError:
            await layer.group_discard(user_group(self.user_id), channel)
            raise

    def stop(self) -> None:
        if self.loop is not None and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)

    def wait_for(self, coids: set[str], timeout_s: float) -> tuple[int, dict[str, str]]:
        """Wait until every client order id in `coids` was reported; return when, and how."""
        pending, statuses = set(coids), {}
        deadline = time.monotonic() + timeout_s
        arrived = 0
        while pending:
            try:
                arrived, message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"{len(pending)} of {len(coids)} executions not reported"
                ) from None
            for row in message.get("executions", []):  # type: ignore[union-attr]
                coid = row["client_order_id"]
                if coid in pending:
                    pending.discard(coid)
                    statuses[coid] = row["status"]
        return arrived, statuses


class Daemon:
    """The real `manage.py run_copier`, in its own process group, output to a file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.log_file = tempfile.NamedTemporaryFile(
            prefix="bench-copier-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [PYTHON, "manage.py", "run_copier"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log_file.flush()
        return Path(self.log_file.name).read_text(errors="replace")

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"run_copier exited with {self.proc.returncode}:\n{self.output()}")
        return True

    def stop(self, keep_log: bool) -> None:
        if self.log_file.closed:
            return  # stopped already
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log_file.close()
        log(f"run_copier stopped (exit {self.proc.returncode})")
        if keep_log:
            log(f"its output: {self.log_file.name}")
        else:
            Path(self.log_file.name).unlink(missing_ok=True)


def run(events: int, burst: int) -> None:
    from brokers.venues import paper
    from copier.core import Side, client_order_id
    from copier.models import Execution
    from copier.outbox import publish_pending
    from tradosphere.bus import COPIER_HEARTBEAT_KEY, sync_redis

    redis = sync_redis()
    redis.flushdb()
    log(f"creating a Paper master and {FOLLOWERS} Paper followers")
    master, links = make_master_and_followers("e2e", FOLLOWERS)
    link_ids = [link.pk for link in links]

    listener = Listener(master.owner_id)
    listener.start()
    daemon = Daemon(os.environ.copy())
    try:
        deadline = time.monotonic() + 30
        while not (daemon.alive() and redis.get(COPIER_HEARTBEAT_KEY)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no copier heartbeat after 30 s:\n{daemon.output()}")
            time.sleep(0.05)
        log("run_copier is up")

        counter = iter(range(10**9))
        open_refs: list[tuple[str, str, str]] = []  # (master ref, symbol, price)

        def master_open() -> tuple[str, int]:
            n = next(counter)
            symbol, volume, price = SYMBOLS[n % len(SYMBOLS)]
            side = Side.BUY if n % 2 == 0 else Side.SELL
            report = paper.open_position(
                master.pk, symbol, side, Decimal(volume), Decimal(price), f"BENCH{n}"
            )
            assert report.event is not None
            open_refs.append((report.ref, symbol, price))
            return report.event.master_ref, report.event.seq

        def master_close() -> tuple[str, int]:
            n = next(counter)
            ref, _symbol, price = open_refs.pop(0)
            report = paper.close_position(
                master.pk, ref, Decimal(price) * Decimal("1.001"), f"BENCH{n}"
            )
            assert report.event is not None
            return report.event.master_ref, report.event.seq

        def coids(master_ref: str, seq: int) -> set[str]:
            return {client_order_id(link_id, master_ref, seq) for link_id in link_ids}

        # -- sequential ---------------------------------------------------------
        timed: list[tuple[str, int, int, int]] = []  # (master ref, seq, t0, t1)
        not_filled = 0
        log(f"sequential: {WARMUP_EVENTS} warm-up events, then {events} timed")
        for i in range(WARMUP_EVENTS + events):
            master_ref, seq = master_open() if not open_refs else master_close()
            t0 = time.monotonic_ns()
            published = publish_pending(master.pk)
            assert published == 1, published
            t1, statuses = listener.wait_for(coids(master_ref, seq), EVENT_TIMEOUT_S)
            not_filled += sum(1 for s in statuses.values() if s != "filled")
            if i >= WARMUP_EVENTS:
                timed.append((master_ref, seq, t0, t1))
            if (i + 1) % 50 == 0:
                log(f"  {i + 1} events")
        latency_ms = [(t1 - t0) / 1e6 for _r, _s, t0, t1 in timed]
        # Events alternate: the warm-up count is even, so timed events 0, 2, ... are opens.
        opens, closes = latency_ms[0::2], latency_ms[1::2]
        result: dict[str, object] = {
            "bench": "e2e",
            "mode": "sequential",
            "followers": FOLLOWERS,
            "events": len(timed),
            **summary("", latency_ms, unit="_ms", digits=2),
            **{k: v for k, v in summary("open_", opens, "_ms", 2).items() if "max" not in k},
            **{k: v for k, v in summary("close_", closes, "_ms", 2).items() if "max" not in k},
            **phases(Execution, timed),
            "not_filled": not_filled,
        }
        emit(result)

        # -- burst ----------------------------------------------------------------
        if burst:
            burst_latency_ms: list[float] = []
            drain_ms: list[float] = []
            log(f"burst: {burst} opens at once, then their {burst} closes")
            for make in (master_open, master_close):
                made = [make() for _ in range(burst)]
                t0 = time.monotonic_ns()
                assert publish_pending(master.pk) == burst
                expected = {c: (ref, seq) for ref, seq in made for c in coids(ref, seq)}
                left = {(ref, seq): FOLLOWERS for ref, seq in made}
                deadline = time.monotonic() + EVENT_TIMEOUT_S * burst
                while left:
                    left_s = max(0.0, deadline - time.monotonic())
                    t1, message = listener.messages.get(timeout=left_s)
                    for row in message.get("executions", []):  # type: ignore[union-attr]
                        key = expected.pop(row["client_order_id"], None)
                        if key is None:
                            continue
                        not_filled += row["status"] != "filled"
                        left[key] -= 1
                        if not left[key]:
                            del left[key]
                            burst_latency_ms.append((t1 - t0) / 1e6)
                drain_ms.append(max(burst_latency_ms[-burst:]))
            emit(
                {
                    "bench": "e2e_burst",
                    "mode": f"burst of {burst} opens, then {burst} closes",
                    "followers": FOLLOWERS,
                    "events": len(burst_latency_ms),
                    **summary("", burst_latency_ms, unit="_ms", digits=2),
                    "events_per_s": round(2 * burst / (sum(drain_ms) / 1000), 1),
                    "fills_per_s": round(2 * burst * FOLLOWERS / (sum(drain_ms) / 1000), 1),
                    "not_filled": not_filled,
                }
            )
        total = Execution.objects.count()
        filled = Execution.objects.filter(status="filled").count()
        log(f"executions recorded: {total}, filled: {filled}")
    except BaseException:
        log(f"run_copier output so far:\n{daemon.output()[-4000:]}")
        daemon.stop(keep_log=True)
        raise
    finally:
        daemon.stop(keep_log=False)
        listener.stop()


def phases(execution_model: type, timed: list[tuple[str, int, int, int]]) -> dict[str, float]:
    """Where the time went, per event, from the daemon's own monotonic stamps.

    publish  -> detected:      publish_pending's SELECT + XADD, the daemon's XREADGROUP wake-up
    detected -> last planned:  links check (Redis GET), load_states (database), planning
    last planned -> first sent: intents HSET, tasks starting
    first sent -> last acked:  the 100 Paper fills (PaperVenue.execute in the venue pool)
    last acked -> recorded:    ledger.record(), intents HDEL, risk check, notify, delivery to us
    """
    stamps: dict[tuple[str, int], list[tuple[int, int, int, int]]] = {}
    rows = execution_model.objects.values_list(  # type: ignore[attr-defined]
        "master_ref", "seq", "t_detected_ns", "t_planned_ns", "t_sent_ns", "t_acked_ns"
    )
    for ref, seq, *t in rows:
        stamps.setdefault((ref, seq), []).append(tuple(t))  # type: ignore[arg-type]
    parts: dict[str, list[float]] = {
        "publish_to_detected": [],
        "detected_to_planned": [],
        "planned_to_sent": [],
        "sent_to_acked": [],
        "acked_to_recorded": [],
    }
    for ref, seq, t0, t1 in timed:
        ts = stamps[(ref, seq)]
        detected = min(t[0] for t in ts)
        planned = max(t[1] for t in ts)
        sent = min(t[2] for t in ts)
        acked = max(t[3] for t in ts)
        for name, a, b in (
            ("publish_to_detected", t0, detected),
            ("detected_to_planned", detected, planned),
            ("planned_to_sent", planned, sent),
            ("sent_to_acked", sent, acked),
            ("acked_to_recorded", acked, t1),
        ):
            parts[name].append((b - a) / 1e6)
    out: dict[str, float] = {}
    for name, values in parts.items():
        s = summary(f"{name}_", values, unit="_ms", digits=2)
        out.update({k: v for k, v in s.items() if not k.endswith("max_ms")})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="timed sequential events")
    parser.add_argument("--burst", type=int, default=20, help="events per burst; 0 for none")
    parser.add_argument("--keep-db", action="store_true", help=f"keep {DB_NAME} afterwards")
    args = parser.parse_args()

    services = Services()
    services.start()
    try:
        database_url = recreate_database(DB_NAME)
        env = bench_env(database_url, REDIS_DB)
        try:
            log(f"migrating {DB_NAME}")
            migrate(env)
            setup_django(env)
            log(f"load average before: {load_average()}")
            try:
                run(args.events, args.burst)
            finally:
                from django.db import connections

                from tradosphere.bus import sync_redis

                sync_redis().flushdb()
                connections.close_all()
        finally:
            if not args.keep_db:
                drop_database(DB_NAME)
    finally:
        services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
