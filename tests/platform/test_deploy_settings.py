"""`manage.py check --deploy` with the production settings README documents: no warnings."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check_deploy(tmp_path: Path, **production: str) -> subprocess.CompletedProcess[str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env = {
        **keep,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        # check --deploy connects to neither: these only have to be well formed
        "DATABASE_URL": "postgres://tokenledger@db.internal:5432/tokenledger",
        "REDIS_URL": "redis://cache.internal:6379/0",
        "ALLOWED_HOSTS": "ledger.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://ledger.example.com",
        "TOKENLEDGER_VAR_DIR": str(tmp_path),
        **production,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_documented_production_settings_pass_check_deploy(tmp_path):
    result = _check_deploy(tmp_path, HTTPS="1", TRUST_X_FORWARDED_PROTO="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("production", "warning"),
    [
        ({}, "security.W004"),  # no HTTPS: no HSTS, cookies not secure, no redirect
        ({"HTTPS": "1", "SESSION_COOKIE_SECURE": "0"}, "security.W012"),
        ({"HTTPS": "1", "SECURE_HSTS_SECONDS": "0"}, "security.W004"),
    ],
)
def test_without_them_check_deploy_warns(tmp_path, production, warning):
    result = _check_deploy(tmp_path, **production)
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


@pytest.mark.django_db
def test_behind_a_tls_proxy_http_is_redirected_but_health_checks_are_not(client, settings):
    settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS = True, 31_536_000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    plain = client.get("/accounts/login/")
    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/accounts/login/")
    assert client.get("/healthz").status_code == 200
    secure = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")
