"""Run the provider simulators (GeWe, E云管家, FastGPT, Dify, OpenAI-compatible, DashScope)
in the foreground until Ctrl-C, on the ports of ``SIMULATOR_PORTS``."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.integrations import simulation


class Command(BaseCommand):
    help = "Run the provider simulators until interrupted (ports from SIMULATOR_PORTS)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SIMULATOR_HOST)
        parser.add_argument(
            "--port",
            action="append",
            default=[],
            metavar="NAME=PORT",
            help="Override one simulator's port, e.g. --port gewe=12531 (0: a free port).",
        )
        parser.add_argument(
            "--only", action="append", default=[], metavar="NAME", help="Run only these."
        )

    def handle(self, *args, host: str, port: list[str], only: list[str], **options):
        available = simulation.available_simulators()
        unknown = [name for name in only if name not in available]
        if unknown:
            raise CommandError(f"Unknown simulator(s): {', '.join(unknown)}; have {available}")
        ports = {name: p for name, p in settings.SIMULATOR_PORTS.items() if name in available}
        for item in port:
            name, _sep, value = item.partition("=")
            if name not in available or not value.isdigit():
                raise CommandError(f"--port expects NAME=PORT with NAME in {available}")
            ports[name] = int(value)
        handle = simulation.start(
            host=host, ports=ports, only=only or available, options=simulation.run_options()
        )
        for name, url in handle.urls.items():
            self.stdout.write(f"{name:10s} {url}")
        self.stdout.write(
            "Credentials: "
            f"GeWe token {simulation.DEMO_GEWE_TOKEN}, "
            f"E云 Authorization {simulation.DEMO_ECLOUD_AUTHORIZATION}, "
            f"OpenAI key {simulation.DEMO_OPENAI_KEY}, "
            f"DashScope key {simulation.DEMO_DASHSCOPE_KEY}, "
            f"FastGPT key {simulation.DEMO_FASTGPT_KEY}, Dify key {simulation.DEMO_DIFY_KEY}"
        )
        self.stdout.write(
            "QR logins confirm themselves after "
            f"{simulation.run_options()['gewe']['login_delay']:g} s "
            "(SIMULATOR_LOGIN_CONFIRM_SECONDS)."
        )
        self.stdout.write("Simulators running; press Ctrl-C to stop.")
        self.stdout.flush()
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        finally:
            handle.stop()
