"""Local development environment file (var/dev.env).

Run as ``python -m tradosphere.devenv`` to create ``var/dev.env`` with fresh
secrets on first use. Re-running never rotates existing values (that would
make already-encrypted broker credentials unreadable); it only appends keys
that are missing.

This module is imported by settings.py, so it must stay free of Django
imports and of side effects at import time.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
DEV_ENV_PATH = VAR_DIR / "dev.env"


def _defaults() -> dict[str, Callable[[], str]]:
    # Callables so secrets are only generated for keys actually being written.
    return {
        "SECRET_KEY": lambda: secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": lambda: secrets.token_urlsafe(32),
        "DEBUG": lambda: "1",
        "REDIS_URL": lambda: "redis://127.0.0.1:6390/0",
        "DATABASE_URL": lambda: f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        "WEB_PORT": lambda: "8000",
    }


def load_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse KEY=VALUE lines; blank lines and ``#`` comments are ignored.

    Returns an empty dict if the file does not exist, so callers (settings.py)
    work the same in CI where configuration comes from the real environment.
    """
    result: dict[str, str] = {}
    p = Path(path)
    if not p.is_file():
        return result
    for raw in p.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if key:
            result[key] = value
    return result


def ensure_dev_env(path: Path = DEV_ENV_PATH) -> list[str]:
    """Create or complete the env file; return the keys that were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = load_env_file(path)
    missing = {k: make() for k, make in _defaults().items() if k not in existing}
    if not missing:
        return []
    prefix = ""
    if path.exists():
        content = path.read_bytes()
        if content and not content.endswith(b"\n"):
            prefix = "\n"
    # O_CREAT with 0600 so the secrets are never world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(prefix + "".join(f"{k}={v}\n" for k, v in missing.items()))
    os.chmod(path, 0o600)
    return list(missing)


def main() -> int:
    written = ensure_dev_env()
    rel = DEV_ENV_PATH.relative_to(PROJECT_ROOT)
    if written:
        print(f"devenv: wrote {', '.join(written)} to {rel}")
    else:
        print(f"devenv: {rel} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
