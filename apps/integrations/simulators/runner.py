"""Start every provider simulator in background threads.

    handle = start_simulators("127.0.0.1", {"gewe": 2531})   # others on free ports
    handle.urls["gewe"]      -> "http://127.0.0.1:2531/gewe/v2/api"  (API base for the client)
    handle["openai"].add_fault("rate_limit", times=1)
    handle.stop()

Run standalone: ``python -m apps.integrations.simulators.runner [--host H] [--port-base N]``.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from .core import SimulatorServer

# name -> (module, class, API path appended to the root URL to get the client's base URL)
SIMULATORS: dict[str, tuple[str, str, str]] = {
    "gewe": ("gewe", "GeWeSimulator", "/gewe/v2/api"),
    "ecloud": ("ecloud", "ECloudSimulator", ""),
    "fastgpt": ("fastgpt", "FastGPTSimulator", "/api"),
    "dify": ("dify", "DifySimulator", "/v1"),
    "openai": ("openai_compat", "OpenAISimulator", "/v1"),
    "dashscope": ("openai_compat", "DashScopeSimulator", "/compatible-mode/v1"),
}


@dataclass
class SimulatorHandle:
    """Running simulators: ``servers[name]`` objects, ``urls[name]`` client base URLs."""

    servers: dict[str, SimulatorServer] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.servers[name]

    def reset(self) -> None:
        for server in self.servers.values():
            server.reset()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulators(
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    *,
    only: list[str] | None = None,
    options: dict[str, dict] | None = None,
) -> SimulatorHandle:
    """Start simulators (all, or those in ``only``) on ``ports[name]`` or a free port.
    ``options[name]`` are constructor keyword arguments (e.g. tokens, keys, delays)."""
    handle = SimulatorHandle()
    try:
        for name in only or list(SIMULATORS):
            module_name, class_name, api_path = SIMULATORS[name]
            module = importlib.import_module(f"{__package__}.{module_name}")
            cls = getattr(module, class_name)
            port = (ports or {}).get(name, 0)
            server = cls(host, port, **(options or {}).get(name, {})).start()
            handle.servers[name] = server
            handle.urls[name] = server.base_url + api_path
    except Exception:
        handle.stop()
        raise
    return handle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the provider simulators.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-base", type=int, default=0, help="first port (0: free ports)")
    args = parser.parse_args(argv)
    ports = {n: args.port_base + i for i, n in enumerate(SIMULATORS)} if args.port_base else None
    handle = start_simulators(args.host, ports)
    for name, url in handle.urls.items():
        print(f"{name:10s} {url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    handle.stop()


if __name__ == "__main__":
    main()
