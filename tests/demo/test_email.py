"""Mail in the demo is printed on the console; one EMAIL_URL sends it through a real SMTP server (issue 21)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOW_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_USE_TLS]))"
)


def _run(tmp_path: Path, *command: str, **extra: str) -> subprocess.CompletedProcess[str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env = {**keep, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'mail.sqlite3'}", "TOKENLEDGER_VAR_DIR": str(tmp_path), **extra}  # fmt: skip
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_without_email_url_mail_is_printed_on_the_console(tmp_path):
    result = _run(tmp_path, "manage.py", "sendtestemail", "owner@demo.example")
    assert result.returncode == 0, result.stderr
    assert "To: owner@demo.example" in result.stdout
    assert "Subject: Test email from" in result.stdout


def test_email_url_configures_smtp(tmp_path):
    result = _run(tmp_path, "-c", SHOW_SETTINGS, EMAIL_URL="smtp+tls://alerts:s3cret@mail.example.com:587")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "django.core.mail.backends.smtp.EmailBackend", "mail.example.com", 587, "alerts", True,
    ]  # fmt: skip
