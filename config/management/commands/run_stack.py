"""Run web (gunicorn), the metering gateway (uvicorn: ASGI, so a long stream holds no worker), a Celery worker and
Celery beat in the foreground; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat together until interrupted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--gateway-port", type=int, default=None, help="default: GATEWAY_PORT, else --port + 1")
        parser.add_argument("--gateway-workers", type=int, default=None,
                            help="gateway processes; default: GATEWAY_WORKERS, else 2 on a multi-core machine")  # fmt: skip

    def handle(
        self, *args: object, port: int, web_workers: int, gateway_port: int | None, gateway_workers: int | None,
        **options: object,
    ) -> None:  # fmt: skip
        python = sys.executable
        gateway_port = gateway_port or int(os.environ.get("GATEWAY_PORT", port + 1))
        gateway_workers = gateway_workers or _gateway_workers_default()
        commands = {
            "web": [
                python, "-m", "gunicorn", "config.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", str(web_workers), "--timeout", "60",
                "--graceful-timeout", "10",
            ],
            # lifespan on: a stopped gateway first records the calls it answered (gateway/asgi.py); one process per
            # core at most matters, since a process's Python runs on one core at a time and a stream holds none
            "gateway": [
                python, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                "--port", str(gateway_port), "--lifespan", "on", "--no-server-header",
                "--workers", str(gateway_workers), "--timeout-graceful-shutdown", "10",
            ],
            "worker": [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": [
                python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                "--scheduler", settings.CELERY_BEAT_SCHEDULER,
            ],
        }  # fmt: skip
        children: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, command in commands.items():
            # own process group: the terminal's Ctrl-C reaches us once, and we stop the children in order
            children[name] = subprocess.Popen(command, start_new_session=True)  # noqa: S603
        gateway = f"http://127.0.0.1:{gateway_port}/gateway"
        self.stdout.write(
            f"TokenLedger running on http://127.0.0.1:{port}/ (web, gateway, worker, beat); Ctrl-C stops all.\n"
            f"Metering gateway ({gateway_workers} process{'es' if gateway_workers > 1 else ''}): OpenAI base URL "
            f"{gateway}/openai/v1, Anthropic base URL {gateway}/anthropic"
        )
        failed = None
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    failed = f"{name} exited with status {child.returncode}"
                    stopping = True
                    break
            time.sleep(0.5)
        self.stdout.write("Stopping web, gateway, worker and beat...")
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if failed:
            raise CommandError(failed)


def _gateway_workers_default() -> int:
    """GATEWAY_WORKERS when set, else 2 on a multi-core machine, else 1."""
    configured = os.environ.get("GATEWAY_WORKERS", "")
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    return 2 if (os.cpu_count() or 1) > 1 else 1
