"""Test set-up: real PostgreSQL, real Redis, real processes.

`make test` starts PostgreSQL and Redis on loopback and exports DATABASE_URL
and REDIS_URL. pytest-django creates the test database once per run; tests
that need the copier daemon or the web server start the real processes
against that same database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tradosphere.devrun import web_command

ROOT = Path(__file__).resolve().parent.parent


PYTHON = sys.executable


def wait_for(
    condition: Callable[[], object], timeout_s: float = 15.0, what: str = "condition"
) -> object:
    """Poll until `condition()` is truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # the condition may raise until the system is ready
            last_error = e
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}: {last_error!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A real child process of the product, with its output kept for failures."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


@pytest.fixture
def redis_client():  # type: ignore[no-untyped-def]
    """A clean Redis database for each test."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def process_env(django_db_setup, django_db_blocker, tmp_path):  # type: ignore[no-untyped-def]
    """The environment for product processes: the test database, the test Redis."""
    from django.db import connection

    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    env = {
        **os.environ,
        "DATABASE_URL": f"{base}/{db_name}",
        "PYTHONUNBUFFERED": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


@pytest.fixture
def start_process(process_env, tmp_path):  # type: ignore[no-untyped-def]
    """Start product processes; every one is stopped after the test."""
    procs: list[Proc] = []

    def start(name: str, args: list[str], **extra_env: str) -> Proc:
        proc = Proc(name, args, {**process_env, **extra_env}, tmp_path)
        procs.append(proc)
        return proc

    yield start
    for proc in reversed(procs):
        proc.kill()


@pytest.fixture
def copier_daemon(start_process, redis_client):  # type: ignore[no-untyped-def]
    """A running `manage.py run_copier`, ready once its heartbeat is in Redis."""

    def start(**extra_env: str) -> Proc:
        proc = start_process("copier", [PYTHON, "manage.py", "run_copier"], **extra_env)
        wait_for(
            lambda: _alive(proc) and redis_client.get("copier:heartbeat"),
            what=f"the copier heartbeat\n{proc.output()}",
        )
        return proc

    redis_client.delete("copier:heartbeat")
    return start


def _alive(proc: Proc) -> bool:
    if proc.popen.poll() is not None:
        raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.output()}")
    return True


@pytest.fixture
def web_server(start_web):  # type: ignore[no-untyped-def]
    """The web server production runs (uvicorn unless WEB_SERVER says otherwise),
    serving the real ASGI application; yields its base URL."""
    return start_web()


@pytest.fixture
def start_web(start_process):  # type: ignore[no-untyped-def]
    """Start the web server with extra environment (WEB_SERVER=daphne picks Daphne);
    returns its base URL."""
    return lambda **env: _web_server(start_process, **env)


def _web_server(start_process, **env: str) -> str:  # type: ignore[no-untyped-def]
    port = free_port()
    # The same command line as `make run`; WEB_SERVER from the test's extra
    # environment wins over the one pytest runs under.
    args = web_command(PYTHON, "127.0.0.1", port, env.get("WEB_SERVER"))
    proc = start_process("web", args, **env)

    def up() -> bool:
        _alive(proc)
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(up, what=f"{args[2]} to listen")
    return f"http://127.0.0.1:{port}"


from tests.mt5_helpers import mt5_farm, mt5_terminal  # noqa: E402, F401 - MT5 fixtures
