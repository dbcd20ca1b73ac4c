"""Signal webhooks under load: POSTs to the real web server, executed by the real copier.

Starts PostgreSQL and Redis (tests/services.sh), a fresh database, the web
server serving `tradosphere.asgi:application` (uvicorn with uvloop and
httptools by default, `--server daphne` for Daphne) and `manage.py
run_copier`. It creates `--sources` signal sources, two per user, so the
default limits of 600 signals a minute per source and 1200 per user hold up
to ~6900 accepted a second over 22 s (a 429 would be counted), each with one
Paper follower linked with multiplier 1.

A separate process, the load generator (uvloop; a minimal HTTP/1.1 client on
keep-alive connections by default, `--client aiohttp` for aiohttp), keeps
`--concurrency` requests in flight over loopback for `--warmup` +
`--duration` seconds. Each source gets buy, close, buy, close, ... for
EURUSD with a unique `alert_id`, one request at a time per source, so a
position-aware source can carry out each signal in the order it was accepted
(a rejection would still be counted, as `rejected`). Ack latency is send →
answer read, per request. Only requests sent inside the timed window count
for the rate and the latency; every accepted signal, warm-up included, is
accounted for afterwards.

Then it waits until every accepted signal id has its `SignalLog` row (at
most `--drain-timeout` s, and not after 120 s without progress) and counts
the rows per outcome: `lost` = accepted signal ids with no row. Every row is
checked against the request that got its 202 (source, alert_id, action). It
exits 1 if anything does not add up: a lost signal, a row no 202 announced, a
row that differs from its request, executed + rejected + failed + lost !=
accepted. `--wait-fills` also waits for the followers' fills.

Run: .venv/bin/python bench/webhook_load.py [--server uvicorn|daphne]
     [--workers 1] [--duration 20] [--concurrency 32] [--sources 256]
Prints one JSON object on stdout ("webhook"); logs to stderr. The database
`tradosphere_bench_webhook` is created fresh and dropped at the end unless
--keep-db; Redis database 10 is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    PYTHON,
    ROOT,
    Services,
    bench_env,
    drop_database,
    emit,
    load_average,
    log,
    migrate,
    percentile,
    recreate_database,
    setup_django,
)

DB_NAME = "tradosphere_bench_webhook"
REDIS_DB = 10
SOURCES_PER_USER = 2
SYMBOL, QTY, PRICE = "EURUSD", "0.10", "1.08500"
STALL_S = 120

# -- the load generator (its own process) ---------------------------------------


class Connection(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive client connection: one request at a time.

    Enough for this server's answers (Content-Length or chunked bodies); far
    cheaper in CPU than a general client, which matters when the generator
    shares the two cores with the server it measures.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answer = self._parse()
        if answer is not None and self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            waiter.set_result(answer)

    def _parse(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = bytes(buf[:head_end]).lower()
        status = int(head[9:12])
        pos = head_end + 4
        if b"transfer-encoding: chunked" in head:
            body = bytearray()
            while True:
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                size = int(buf[pos:line_end].split(b";")[0], 16)
                if size == 0:
                    if len(buf) < line_end + 4:
                        return None
                    pos = line_end + 4  # no trailers from these servers
                    break
                if len(buf) < line_end + 2 + size + 2:
                    return None
                body += buf[line_end + 2 : line_end + 2 + size]
                pos = line_end + 2 + size + 2
        else:
            marker = head.find(b"content-length:")
            length = int(head[marker + 15 : head.find(b"\r\n", marker)]) if marker >= 0 else 0
            if len(buf) < pos + length:
                return None
            body = buf[pos : pos + length]
            pos += length
        del buf[:pos]
        return status, bytes(body)


def generate(config: dict[str, object], out_path: str, started: Any) -> None:
    """The load generator's process: fixed concurrency, keep-alive, results to a file."""
    import uvloop

    uvloop.run(_generate(config, out_path, started))


async def _generate(config: dict[str, object], out_path: str, started: Any) -> None:
    host, port = str(config["host"]), int(config["port"])  # type: ignore[call-overload]
    tokens: list[str] = config["tokens"]  # type: ignore[assignment]
    concurrency = int(config["concurrency"])  # type: ignore[call-overload]
    warmup_s = float(config["warmup_s"])  # type: ignore[arg-type]
    duration_s = float(config["duration_s"])  # type: ignore[arg-type]
    run_tag = str(config["run"])
    client = str(config["client"])
    # (source index, sequence number per source, send ns, answer ns, status, signal id)
    results: list[tuple[int, int, int, int, int, str]] = []
    errors: list[str] = []
    cpu0 = time.process_time()
    loop = asyncio.get_running_loop()

    session: Any = None
    if client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
            timeout=aiohttp.ClientTimeout(total=30),
        )
    t_start = time.monotonic_ns()
    t_end = t_start + int((warmup_s + duration_s) * 1e9)
    started.set()

    async def worker(w: int) -> None:
        mine = list(range(w, len(tokens), concurrency))
        seq = dict.fromkeys(mine, 0)
        conn: Connection | None = None
        if client == "raw":
            _t, conn = await loop.create_connection(Connection, host, port)
        while True:
            for s in mine:
                if time.monotonic_ns() >= t_end:
                    if conn is not None and conn.transport is not None:
                        conn.transport.close()
                    return
                n = seq[s]
                seq[s] = n + 1
                alert_id = f"{run_tag}-{s}-{n}"
                if n % 2 == 0:
                    payload = {"action": "buy", "ticker": SYMBOL, "qty": QTY}
                else:
                    payload = {"action": "close", "ticker": SYMBOL}
                payload |= {"price": PRICE, "alert_id": alert_id}
                body = json.dumps(payload).encode()
                path = f"/hooks/{tokens[s]}"
                t0 = time.monotonic_ns()
                try:
                    if conn is not None:
                        request = (
                            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                            "Content-Type: application/json\r\n"
                            f"Content-Length: {len(body)}\r\n\r\n"
                        ).encode() + body
                        status, answer = await asyncio.wait_for(conn.request(request), 30)
                    else:
                        async with session.post(
                            f"http://{host}:{port}{path}",
                            data=body,
                            headers={"content-type": "application/json"},
                        ) as r:
                            answer = await r.read()
                            status = r.status
                except Exception as e:  # a failed request is counted, not fatal
                    errors.append(f"{type(e).__name__}: {e}")
                    results.append((s, n, t0, time.monotonic_ns(), 0, ""))
                    if conn is not None:
                        if conn.transport is not None:
                            conn.transport.close()
                        _t, conn = await loop.create_connection(Connection, host, port)
                    continue
                t1 = time.monotonic_ns()
                sid = ""
                if status in (200, 202):
                    sid = json.loads(answer)["signal_id"]
                elif len(errors) < 20:
                    errors.append(f"{status}: {answer[:200]!r}")
                results.append((s, n, t0, t1, status, sid))

    try:
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    finally:
        if session is not None:
            await session.close()
    Path(out_path).write_text(
        json.dumps(
            {
                "t_start": t_start,
                "results": results,
                "errors": errors,
                "cpu_s": time.process_time() - cpu0,
            }
        )
    )


# -- processes ---------------------------------------------------------------------


class Child:
    """A product process in its own process group, output to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_file = tempfile.NamedTemporaryFile(
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log_file.flush()
        return Path(self.log_file.name).read_text(errors="replace")

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")

    def pids(self) -> list[int]:
        """The process and its children (uvicorn workers)."""
        found = [self.proc.pid]
        for pid in found:
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            found.extend(int(c) for c in children)
        return found

    def stop(self, keep_log: bool) -> None:
        if self.log_file.closed:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log_file.close()
        log(f"{self.name} stopped (exit {self.proc.returncode})")
        if keep_log:
            log(f"its output: {self.log_file.name}")
        else:
            Path(self.log_file.name).unlink(missing_ok=True)


def cpu_ticks(pids: list[int]) -> int:
    """User + system clock ticks of these processes (0 for any that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def pids_named(name: str) -> list[int]:
    """Processes whose command name starts with `name`."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().startswith(name):
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_web(server: str, workers: int, port: int, env: dict[str, str]) -> Child:
    app = "tradosphere.asgi:application"
    if server == "daphne":
        if workers != 1:
            raise SystemExit("Daphne runs one process here; use --workers 1")
        args = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    else:
        args = [
            PYTHON,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ]
    web = Child(server, args, env)
    deadline = time.monotonic() + 60
    while True:
        web.check()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server} is not listening after 60 s:\n{web.output()}")
        time.sleep(0.1)
    return web


# -- rows ------------------------------------------------------------------------------


def make_sources(n: int, run_tag: str) -> tuple[list[str], list[int]]:
    """`n` signal sources (two per user) with one linked Paper follower each.

    The rows the source page makes (brokers/views_signals.py): a webhook
    master account and its `SignalSource` keyed by the token's SHA-256.
    Returns the tokens and the source account ids, in the same order.
    """
    from decimal import Decimal

    from django.db import transaction

    from accounts.models import User
    from brokers.models import BrokerAccount, PaperAccount, Role, SignalSource, Venue
    from copier.models import CopyLink
    from copier.outbox import bump_links_version

    tokens, ids = [], []
    with transaction.atomic():
        user = None
        for i in range(n):
            if i % SOURCES_PER_USER == 0:
                user = User.objects.create_user(
                    email=f"bench-hooks-{run_tag}-{i // SOURCES_PER_USER}@example.com",
                    password=None,
                )
            # As the source page makes them.
            source, token, _ = SignalSource.open(
                user,
                f"Alerts {i}",
                dedup_window_s=60,
                position_aware=True,
                allow_pyramiding=False,
                equity=Decimal(10_000),
            )
            account = source.account
            follower = BrokerAccount.objects.create(
                owner=user, venue=Venue.PAPER, label=f"Follower {i}", role=Role.FOLLOWER
            )
            PaperAccount.objects.create(
                account=follower,
                starting_balance=Decimal(1_000_000),
                balance=Decimal(1_000_000),
            )
            CopyLink.objects.create(
                owner=user, master=account, follower=follower, sizing_value=Decimal(1)
            )
            tokens.append(token)
            ids.append(account.pk)
    bump_links_version()
    return tokens, ids


# -- the run ----------------------------------------------------------------------------


def run(args: argparse.Namespace, env: dict[str, str]) -> int:
    from django.db import connection

    from brokers.models import SignalLog
    from copier.models import Execution, MasterEventRecord
    from tradosphere.bus import COPIER_HEARTBEAT_KEY, sync_redis

    redis = sync_redis()
    redis.flushdb()
    run_tag = secrets.token_hex(4)
    log(f"creating {args.sources} signal sources with one Paper follower each")
    tokens, source_ids = make_sources(args.sources, run_tag)
    connection.close()

    copier = Child("run_copier", [PYTHON, "manage.py", "run_copier"], env)
    web: Child | None = None
    keep_logs = True
    try:
        deadline = time.monotonic() + 30
        while not redis.get(COPIER_HEARTBEAT_KEY):
            copier.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"no copier heartbeat after 30 s:\n{copier.output()}")
            time.sleep(0.05)
        port = free_port()
        web = start_web(args.server, args.workers, port, env)
        log(f"{args.server} listens on 127.0.0.1:{port}; run_copier is up")

        out = tempfile.NamedTemporaryFile(prefix="bench-hooks-", suffix=".json", delete=False)
        out.close()
        config = {
            "host": "127.0.0.1",
            "port": port,
            "client": args.client,
            "tokens": tokens,
            "concurrency": args.concurrency,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "run": run_tag,
        }
        load_before = load_average()
        log(f"load average before: {load_before}")
        log(
            f"POSTing for {args.warmup:g} s warm-up + {args.duration:g} s, "
            f"{args.concurrency} in flight"
        )
        context = multiprocessing.get_context("spawn")
        started = context.Event()
        generator = context.Process(
            target=generate, args=(config, out.name, started), name="load-generator"
        )
        generator.start()
        if not started.wait(60):
            raise RuntimeError("the load generator did not start")
        # CPU use over the window, per process: /proc read at its start and end.
        assert generator.pid is not None
        time.sleep(args.warmup)
        groups = {
            "server": web.pids(),
            "copier": [copier.proc.pid],
            "generator": [generator.pid],
            # Shared with anything else on the machine (another test suite's database too).
            "redis": pids_named("redis-server"),
            "postgres": pids_named("postgres"),
        }
        ticks0 = {k: cpu_ticks(v) for k, v in groups.items()}
        machine0 = machine_ticks()
        t_window0 = time.monotonic()
        time.sleep(max(0.0, args.duration - 0.2))
        ticks1 = {k: cpu_ticks(v) for k, v in groups.items()}
        machine1 = machine_ticks()
        t_window = time.monotonic() - t_window0
        load_after = load_average()
        logged_at_end = SignalLog.objects.filter(source_id__in=source_ids).count()
        connection.close()
        generator.join(120)
        if generator.exitcode != 0:
            raise RuntimeError(f"the load generator failed (exit {generator.exitcode})")
        data = json.loads(Path(out.name).read_text())
        Path(out.name).unlink()
        web.check()
        copier.check()
        hz = os.sysconf("SC_CLK_TCK")
        # Per process group in % of one core; the machine in % of all its cores.
        cpu_pct = {
            f"cpu_{k}_pct": round(100 * (ticks1[k] - ticks0[k]) / hz / t_window, 1) for k in groups
        }
        busy = machine1[0] - machine0[0]
        cores = os.cpu_count() or 1
        cpu_pct["cpu_machine_busy_pct"] = round(100 * busy / max(1, machine1[1] - machine0[1]), 1)
        cpu_pct["cpu_others_pct"] = round(
            cpu_pct["cpu_machine_busy_pct"] * cores - sum(cpu_pct[f"cpu_{k}_pct"] for k in groups),
            1,
        )

        # -- the answers ---------------------------------------------------------------
        t_start = data["t_start"]
        w0 = t_start + int(args.warmup * 1e9)
        w1 = w0 + int(args.duration * 1e9)
        results = [tuple(r) for r in data["results"]]
        sent = len(results)
        statuses: dict[int, int] = {}
        for r in results:
            statuses[r[4]] = statuses.get(r[4], 0) + 1
        accepted = {r[5]: (r[0], r[1]) for r in results if r[4] == 202}
        timed = [r for r in results if w0 <= r[2] < w1]
        latency_ms = [(r[3] - r[2]) / 1e6 for r in timed]
        accepted_in_window = sum(1 for r in timed if r[4] == 202)
        log(f"sent {sent}, statuses {statuses}; errors: {data['errors'][:5]}")

        # -- drain: every accepted signal gets its log line -----------------------------
        t_drain0 = time.monotonic()
        ids = list(accepted)
        found = at_drain0 = SignalLog.objects.filter(source_id__in=source_ids).count()
        last_log = t_drain0
        log(f"{logged_at_end} signals had an outcome at the end of the window, {found} now")
        progress_at, progress = t_drain0, found
        while found < len(ids):
            now = time.monotonic()
            if now - t_drain0 > args.drain_timeout:
                log(f"drain timeout: {found} of {len(ids)} signals have an outcome")
                break
            if now - progress_at > STALL_S:
                log(f"no progress for {STALL_S} s: {found} of {len(ids)} have an outcome")
                break
            copier.check()
            time.sleep(0.5)
            found = SignalLog.objects.filter(source_id__in=source_ids).count()
            if found > progress:
                progress_at, progress = time.monotonic(), found
            if time.monotonic() - last_log >= 30:
                last_log = time.monotonic()
                log(f"  draining: {found} of {len(ids)} signals have an outcome")
        drain_s = time.monotonic() - t_drain0
        copier_rate = (found - at_drain0) / drain_s if drain_s > 1 else None
        log(f"signals drained in {drain_s:.1f} s")

        def events_backlog() -> int:
            """Master events not yet handled by the copier (fan-out to the followers)."""
            for g in redis.xinfo_groups("copier:events"):
                if g["name"] == "copier":
                    return int(g["pending"]) + int(g.get("lag") or 0)
            return -1

        backlog_at_drain = events_backlog()
        # Each executed signal here makes one master event; the stream should hold each once.
        master_events = MasterEventRecord.objects.filter(account_id__in=source_ids).count()
        # The daemon trims what it has handled, so count what was ever added (Redis 7).
        info = redis.xinfo_stream("copier:events")
        on_stream = int(info.get("entries-added") or info["length"])
        if on_stream > master_events:
            log(
                f"WARNING: copier:events holds {on_stream} entries for {master_events} master"
                " events: some were published more than once"
            )
        log(f"{backlog_at_drain} master events still wait for the followers' fills")
        fills_drain_s = None
        if args.wait_fills:
            while time.monotonic() - t_drain0 <= args.drain_timeout and events_backlog():
                copier.check()
                time.sleep(0.5)
            if not events_backlog():
                fills_drain_s = round(time.monotonic() - t_drain0, 1)
        connection.close()

        # -- accounting -------------------------------------------------------------------
        rows = {
            sid: (source, alert_id, action, outcome)
            for sid, source, alert_id, action, outcome in SignalLog.objects.filter(
                source_id__in=source_ids
            ).values_list("signal_id", "source_id", "alert_id", "action", "outcome")
        }
        outcomes: dict[str, int] = {}
        for *_x, outcome in rows.values():
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        lost_ids = [sid for sid in ids if sid not in rows]
        strangers = [sid for sid in rows if sid not in accepted]
        # Every row against what was sent to get its 202 (a superset of a sample check).
        mismatches = []
        for sid in ids:
            if sid not in rows:
                continue
            s, n = accepted[sid]
            want = (source_ids[s], f"{run_tag}-{s}-{n}", "buy" if n % 2 == 0 else "close")
            if rows[sid][:3] != want:
                mismatches.append((sid, want, rows[sid]))
        executed = outcomes.get("executed", 0)
        rejected = outcomes.get("rejected", 0)
        failed = outcomes.get("failed", 0)
        lost = len(lost_ids)
        fills = Execution.objects.filter(status="filled").count()
        executions = Execution.objects.count()
        connection.close()

        result: dict[str, object] = {
            "bench": "webhook",
            "rate_per_s": round(accepted_in_window / args.duration, 1),
            "ack_p50_ms": round(percentile(latency_ms, 50), 2),
            "ack_p99_ms": round(percentile(latency_ms, 99), 2),
            "sent": sent,
            "accepted": len(accepted),
            "executed": executed,
            "lost": lost,
            "rejected": rejected,
            "failed": failed,
            "server": args.server,
            "cores": os.cpu_count(),
            "workers": args.workers,
            "concurrency": args.concurrency,
            "client": args.client,
            "sources": args.sources,
            "duration_s": args.duration,
            "window_sent": len(timed),
            "window_accepted": accepted_in_window,
            "ack_max_ms": round(max(latency_ms), 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "drain_s": round(drain_s, 1),
            "drain_timeout_s": args.drain_timeout,
            "drained": lost == 0,
            "logged_in_window": logged_at_end,
            "copier_signals_per_s": None if copier_rate is None else round(copier_rate, 1),
            "fills": fills,
            "executions": executions,
            "master_events": master_events,
            "events_on_stream": on_stream,
            "events_backlog_at_drain": backlog_at_drain,
            "fills_drain_s": fills_drain_s,
            **cpu_pct,
            "load_before": load_before,
            "load_after": load_after,
        }
        emit(result)
        problems = []
        if lost:
            problems.append(f"{lost} accepted signal(s) have no SignalLog row: {lost_ids[:5]}")
        if strangers:
            problems.append(f"{len(strangers)} SignalLog row(s) match no 202: {strangers[:5]}")
        if mismatches:
            problems.append(f"{len(mismatches)} row(s) differ from their 202: {mismatches[:3]}")
        if executed + rejected + failed + lost != len(accepted):
            problems.append(
                f"executed {executed} + rejected {rejected} + failed {failed} + lost {lost}"
                f" != accepted {len(accepted)}"
            )
        if not accepted:
            problems.append("nothing was accepted")
        for p in problems:
            log(f"FAIL: {p}")
        keep_logs = bool(problems)
        return 1 if problems else 0
    finally:
        if web is not None:
            web.stop(keep_log=keep_logs)
        copier.stop(keep_log=keep_logs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("uvicorn", "daphne"), default="uvicorn")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--duration", type=float, default=20.0, help="timed seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds first")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--sources", type=int, default=256, help="signal sources")
    parser.add_argument(
        "--client", choices=("raw", "aiohttp"), default="raw", help="the generator's HTTP client"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=3600.0, help="seconds to wait for outcomes"
    )
    parser.add_argument(
        "--wait-fills", action="store_true", help="also wait until the followers' fills are done"
    )
    parser.add_argument("--keep-db", action="store_true", help=f"keep {DB_NAME} afterwards")
    args = parser.parse_args()
    if args.sources < args.concurrency:
        parser.error("--sources must be at least --concurrency (one request per source)")

    services = Services()
    services.start()
    try:
        database_url = recreate_database(DB_NAME)
        env = bench_env(database_url, REDIS_DB)
        try:
            log(f"migrating {DB_NAME}")
            migrate(env)
            setup_django(env)
            try:
                return run(args, env)
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


if __name__ == "__main__":
    sys.exit(main())
