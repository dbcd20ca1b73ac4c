"""What the benchmarks share: services, a throwaway database, the environment.

Only the standard library and runtime requirements are imported here, so a
benchmark runs after `make install` alone. Logs go to stderr; stdout is kept
for the one-JSON-object-per-line results.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_ADMIN_URL = "postgres://tradosphere:tradosphere@127.0.0.1:5432/postgres"
PG_BASE_URL = "postgres://tradosphere:tradosphere@127.0.0.1:5432"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(*parts: object) -> None:
    print("[bench]", *parts, file=sys.stderr, flush=True)


def emit(result: dict[str, object]) -> None:
    """One result: one JSON object on one line of stdout."""
    print(json.dumps(result), flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def summary(
    prefix: str, values: list[float], unit: str = "_us", digits: int = 1
) -> dict[str, float]:
    """p50, p99 and max of `values` as `{prefix}p50{unit}` ... keys."""
    return {
        f"{prefix}{name}{unit}": round(value, digits)
        for name, value in (
            ("p50", percentile(values, 50)),
            ("p99", percentile(values, 99)),
            ("max", max(values)),
        )
    }


# -- services -----------------------------------------------------------------


def _postgres_up() -> bool:
    if shutil.which("pg_isready") is None:
        return False
    cmd = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]
    return subprocess.run(cmd, check=False).returncode == 0


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(REDIS_HOST, REDIS_PORT, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


class Services:
    """PostgreSQL and Redis from tests/services.sh; stops only what it started."""

    def __init__(self) -> None:
        self.started_postgres = False
        self.started_redis = False

    def start(self) -> None:
        pg_was_up, redis_was_up = _postgres_up(), _redis_up()
        log("starting services with tests/services.sh")
        subprocess.run(
            ["bash", str(ROOT / "tests" / "services.sh")],
            cwd=ROOT,
            check=True,
            stdout=sys.stderr,
            stdin=subprocess.DEVNULL,
        )
        self.started_postgres = not pg_was_up
        self.started_redis = not redis_was_up
        keep = os.environ.get("BENCH_KEEP_SERVICES") == "1"
        if keep:
            self.started_postgres = self.started_redis = False

    def stop(self) -> None:
        if self.started_redis:
            log("stopping the Redis server this benchmark started")
            import redis

            try:
                redis.Redis(REDIS_HOST, REDIS_PORT).shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # SHUTDOWN closes the connection as it stops the server
        if self.started_postgres:
            log("stopping the PostgreSQL cluster this benchmark started")
            version = sorted(os.listdir("/usr/lib/postgresql"), key=int)[-1]
            subprocess.run(
                ["pg_ctlcluster", version, "main", "stop"], check=False, stdout=sys.stderr
            )


def recreate_database(name: str) -> str:
    """Drop and create a PostgreSQL database for the benchmark; return its URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_BASE_URL}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_version() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def bench_env(database_url: str, redis_db: int) -> dict[str, str]:
    """The product's environment for the benchmark: throwaway secrets, our services."""
    return {
        "TRADOSPHERE_ENV_FILE": "",
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(40),
        "FIELD_ENCRYPTION_KEY": "bench-" + secrets.token_urlsafe(32),
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
        "DEBUG": "0",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "PYTHONUNBUFFERED": "1",
    }


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradosphere.settings")
    import django

    django.setup()


def migrate(env: dict[str, str]) -> None:
    """Migrate the bench's database in a child process, as `manage.py migrate` would."""
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        stdout=sys.stderr,
    )


class GcClock:
    """Total time the garbage collector paused this process, in nanoseconds."""

    def __init__(self) -> None:
        self.total_ns = 0
        self._started = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        else:
            self.total_ns += time.perf_counter_ns() - self._started

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, to judge how quiet the machine was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- rows -----------------------------------------------------------------------

SYMBOLS = (
    # symbol, master volume, price: every multiplier below gives a valid follower volume
    ("EURUSD", "1", "1.08500"),
    ("XAUUSD", "1", "2350.50"),
    ("BTCUSD", "1", "65000.00"),
    ("US500", "1", "5200.0"),
)
MULTIPLIERS = ("1", "0.5", "2")


def make_master_and_followers(tag: str, followers: int) -> tuple[object, list[object]]:
    """A user with one Paper master and `followers` Paper followers, each linked.

    The same rows tests/factories.py makes (BrokerAccount + PaperAccount per
    account, one CopyLink per follower with the multiplier rule), written here
    so the benchmarks depend on runtime code only.
    """
    from decimal import Decimal

    from django.db import transaction

    from accounts.models import User
    from brokers.models import BrokerAccount, PaperAccount, Role, Venue
    from copier.models import CopyLink

    def paper(owner: User, label: str, role: str) -> BrokerAccount:
        account = BrokerAccount.objects.create(
            owner=owner, venue=Venue.PAPER, label=label, role=role
        )
        PaperAccount.objects.create(
            account=account, starting_balance=Decimal(1_000_000), balance=Decimal(1_000_000)
        )
        return account

    with transaction.atomic():
        user = User.objects.create_user(email=f"bench-{tag}@example.com", password=None)
        master = paper(user, "Master", Role.MASTER)
        links = []
        for i in range(followers):
            follower = paper(user, f"Follower {i:04d}", Role.FOLLOWER)
            links.append(
                CopyLink.objects.create(
                    owner=user,
                    master=master,
                    follower=follower,
                    sizing_value=Decimal(MULTIPLIERS[i % len(MULTIPLIERS)]),
                )
            )
    return master, links
