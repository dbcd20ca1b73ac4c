"""The terminal state file of the MetaTrader5 TEST STAND-IN (test code only).

A real MetaTrader 5 terminal is a separate Windows process: its state (the
logged-in account, the positions it has been told about by the trade server,
its connection) survives the Python process that talks to it. The stand-in
keeps that state in one JSON file, named by the environment variable
`MT5_STANDIN_STATE`, so that the agent process, a restarted agent process and
the test process (through `tests/mt5_standin/control.py`) all see one terminal.

Design:
- one exclusive `fcntl.flock` on a sidecar file `<state>.lock` around every
  transaction, so two processes never interleave a read-modify-write;
- every save writes a new random generation token into the lock file (under
  the lock); the parsed state is cached per process and reloaded only when the
  token or the file's (inode, size, mtime_ns) changed, so a poll loop of a few
  milliseconds does one `open`, `flock`, `pread` and `stat` per call while
  nothing changes (file times alone are too coarse: two saves within one
  clock tick can leave the same size and a reused inode);
- a transaction that changed something writes a temporary file beside the
  state and `os.replace`s it over the state, so a reader (or a process killed
  mid-write) never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any

_TOKEN_LEN = 32


class Txn:
    """One locked transaction on the state: set `dirty` when `state` was changed."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.dirty = False


class Store:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.lock_path = self.path + ".lock"
        self._state: dict[str, Any] | None = None
        self._key: tuple[bytes, int, int, int] | None = None

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def _stat_key(self, fd: int) -> tuple[bytes, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (os.pread(fd, _TOKEN_LEN, 0), st.st_ino, st.st_size, st.st_mtime_ns)

    @contextlib.contextmanager
    def transaction(self, *, create: dict[str, Any] | None = None) -> Iterator[Txn]:
        """Lock, load if changed, yield a `Txn`, save if it is dirty.

        With `create`, a missing state file starts as that state (and is saved);
        without it, a missing file raises FileNotFoundError.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            key = self._stat_key(fd)
            if key is None:
                if create is None:
                    raise FileNotFoundError(self.path)
                self._state, self._key = create, None
                txn = Txn(self._state)
                txn.dirty = True
            else:
                if key != self._key or self._state is None:
                    with open(self.path, encoding="utf-8") as f:
                        self._state = json.load(f)
                    self._key = key
                txn = Txn(self._state)
            try:
                yield txn
            except BaseException:
                # The in-memory copy may be half changed: forget it.
                self._state, self._key = None, None
                raise
            if txn.dirty:
                self._save(txn.state, fd)
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _save(self, state: dict[str, Any], fd: int) -> None:
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, separators=(",", ":"))
        os.replace(tmp, self.path)
        os.pwrite(fd, os.urandom(_TOKEN_LEN // 2).hex().encode(), 0)
        self._state = state
        self._key = self._stat_key(fd)


_stores: dict[str, Store] = {}


def store_for(path: str) -> Store:
    """One cached `Store` per state path in this process."""
    path = os.path.abspath(path)
    store = _stores.get(path)
    if store is None:
        store = _stores[path] = Store(path)
    return store
