"""Run the whole product in the foreground: Daphne, a Celery worker, beat (and the simulators).

Used by `make run`. Children share the same Redis (the embedded one when REDIS_URL is unset)
and database. Ctrl-C (SIGINT) or SIGTERM stops all of them cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.core import embedded_redis


class Command(BaseCommand):
    help = "Migrate, seed the demo organisation, and run Daphne + Celery worker + beat."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-simulators", action="store_true")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, host, port, no_simulators, concurrency, **options):
        base = public_base_url(host, port)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("compilemessages_if_needed")
        call_command("seed_demo")
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "PUBLIC_BASE_URL": base}
        env.setdefault("DJANGO_SETTINGS_MODULE", os.environ["DJANGO_SETTINGS_MODULE"])
        python = sys.executable
        commands = {
            "web": [python, "-m", "daphne", "-b", host, "-p", str(port), "config.asgi:application"],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "INFO",
                "--concurrency",
                str(concurrency),
            ],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "INFO"],
        }
        if not no_simulators and _simulators_available():
            commands["simulators"] = [python, "manage.py", "simulate"]
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_args):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # The simulators first: they must know the demo account (and our webhook URL) before
        # beat's first online check asks them, or the account would be marked offline.
        if "simulators" in commands:
            children["simulators"] = subprocess.Popen(  # noqa: S603
                commands.pop("simulators"), env=env, cwd=settings.BASE_DIR
            )
            self._sync_simulators(children["simulators"])
        for name, cmd in commands.items():
            children[name] = subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR)  # noqa: S603
        # Say "running" only once the web process accepts connections: a webhook posted before
        # that (a simulated customer typed right away) would be lost, as with a real platform.
        _wait_for_port(host, port, children["web"])
        self.stdout.write(
            self.style.SUCCESS(
                f"\nRunning: {', '.join(children)}\n"
                f"  Admin:     {base}/admin/\n  Workspace: {base}/workspace/\n"
                f"  API docs:  {base}/api/docs/\n"
                f"  Health:    {base}/healthz  {base}/readyz\n"
                f"  Webhooks:  {base} (PUBLIC_BASE_URL)\n"
            )
        )
        self._print_logins()
        self.stdout.write(
            self.style.SUCCESS(
                '  Try it:    python manage.py simulate_customer "你好，地板怎么卖？"\n'
                "  Press Ctrl-C to stop.\n"
            )
        )
        exit_code = 0
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with {child.returncode}; stopping.")
                        exit_code = child.returncode or 1
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children.values():
                try:
                    child.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    child.kill()
            if not os.environ.get("REDIS_URL"):
                embedded_redis.stop(settings.VAR_DIR)
            self.stdout.write("Stopped.")
        if exit_code:
            sys.exit(exit_code)

    def _sync_simulators(self, process: subprocess.Popen) -> None:
        """Wait for the simulators, then teach them the demo accounts and our webhook URL."""
        deadline = time.monotonic() + 90  # the simulators import Django first: slow boxes
        while time.monotonic() < deadline and process.poll() is None:
            try:
                call_command("simulator_sync", stdout=self.stdout, stderr=self.stderr)
                return
            except CommandError as exc:
                if "not reachable" not in str(exc):
                    self.stderr.write(f"simulator_sync: {exc}")
                    return
                time.sleep(0.5)
        self.stderr.write("simulator_sync: the simulators did not come up in time")

    def _print_logins(self) -> None:
        path = settings.VAR_DIR / "demo_logins.json"
        if not path.exists():
            return
        try:
            logins = json.loads(path.read_text())
        except ValueError:
            return
        self.stdout.write(self.style.SUCCESS("  Logins (also in var/demo_logins.json):"))
        for row in logins:
            self.stdout.write(
                self.style.SUCCESS(f"    {row['role']:7s} {row['email']} / {row['password']}")
            )


def public_base_url(host: str, port: int) -> str:
    """The origin webhooks must reach: ``PUBLIC_BASE_URL`` when it is set, else the address this
    command serves on (so simulators post to this stack, not to whatever listens on 8000). The
    value is put into this process's settings and the children's environment."""
    explicit = os.environ.get("PUBLIC_BASE_URL", "").strip()
    if explicit:
        base = explicit.rstrip("/")
    else:
        reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104
        if ":" in reachable:
            reachable = f"[{reachable}]"
        base = f"http://{reachable}:{port}"
    os.environ["PUBLIC_BASE_URL"] = base
    settings.PUBLIC_BASE_URL = base
    return base


def _wait_for_port(host: str, port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    address = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)


def _simulators_available() -> bool:
    from django.core.management import get_commands

    return "simulate" in get_commands()
