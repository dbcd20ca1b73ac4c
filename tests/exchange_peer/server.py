"""Run an aiohttp application on 127.0.0.1 in a background thread.

Why a thread and not a subprocess: the peer's in-memory exchange state (keys,
balances, orders, the log of received requests, injected failures) is driven
directly from the test through a plain Python API. In the same process the
test reads and changes that state without an IPC protocol of its own, and an
assertion failure shows the real objects. The server still runs on its own
event loop in its own thread and is reached only through real TCP sockets, so
a client under test (ccxt with aiohttp, or a product process given the URL)
does genuine HTTP. Sync pytest tests can call `start()`/`stop()`, and the test
thread is free to run its own loop with `asyncio.run`.

The shared state is touched from two threads (handlers on the server loop,
hooks from the test thread); the application guards it with a lock.

`stop()` closes the listening socket and every open connection, so the peer
becomes unreachable (connection refused); `start()` afterwards listens again on
the same port, so clients configured with the old URL reach it again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web


class ThreadedServer:
    """An aiohttp app served from a daemon thread, with start/stop from sync code."""

    def __init__(
        self, app_factory: Callable[[], web.Application], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._app_factory = app_factory
        self.host = host
        self.port = port  # 0: pick a free port on the first start, then keep it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("the server has not been started yet")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> str:
        if self.running:
            return self.base_url
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        async def setup() -> None:
            runner = web.AppRunner(
                self._app_factory(), handle_signals=False, access_log=None, shutdown_timeout=1
            )
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
            self.port = int(runner.addresses[0][1])
            self._runner = runner

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(setup())
            except BaseException as e:
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
                    self._runner = None
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"peer:{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError("the peer did not start in time")
        if failure:
            self._thread.join(timeout_s)
            self._thread = None
            raise failure[0]
        return self.base_url

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.running:
            return
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError("the peer did not stop in time")
        self._thread = None
        self._loop = None
