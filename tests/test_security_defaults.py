"""Production is the default: DEBUG is off unless the environment turns it
on, and the demo data (staff with a published password) is never loaded
into a production settings module unless the database is declared a demo one."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiToken, User

ROOT = Path(__file__).resolve().parent.parent
# set for the browser tests' event loop, or by scripts/test for this process: a child must not inherit them
NOT_INHERITED = ("DJANGO_ALLOW_ASYNC_UNSAFE", "DEBUG", "DJANGO_DEBUG")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    child = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    child.update(DJANGO_SETTINGS_MODULE="cs_portal.settings", **env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child, capture_output=True, text=True,
                          timeout=120)


def test_settings_default_to_debug_off():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    result = _python(code, SECRET_KEY="x-check-only-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
    # and without a secret key they refuse to start
    unset = _python(code)
    assert unset.returncode != 0 and "SECRET_KEY" in unset.stderr
    # DEBUG=1 is the developer's (scripts/dev, scripts/test)
    assert _python(code, DEBUG="1").stdout.strip() == "True"


def test_only_commands_that_read_the_code_run_without_a_secret_key():
    child = {k: v for k, v in os.environ.items() if k not in (*NOT_INHERITED, "SECRET_KEY")}

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=child, capture_output=True,
                              text=True, timeout=120)

    checked = manage("makemigrations", "--check", "--dry-run")
    assert checked.returncode == 0 and "No changes detected" in checked.stdout, checked.stderr[-2000:]
    for serving in (("check", "--deploy"), ("migrate", "--plan"), ("collectstatic", "--noinput", "--dry-run")):
        refused = manage(*serving)
        assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr, serving


@pytest.mark.django_db
def test_seed_demo_refuses_a_production_settings_module(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--demo-database"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.exists()
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_seed_demo_runs_with_debug_off_when_told_the_database_is_a_demo_one(settings):
    settings.DEBUG = False
    out = StringIO()
    call_command("seed_demo", demo_database=True, stdout=out)
    assert User.objects.filter(username="agent1").exists()
    # the order system's token never expires; its key is shown once, when issued
    token = ApiToken.objects.get(user__username="order-system")
    assert token.expires_at is None and f"Authorization: Token {token.prefix}" in out.getvalue()



@pytest.mark.django_db
def test_seed_demo_takes_the_demo_database_from_the_environment(settings, monkeypatch):
    # a harness that runs the plain command on production settings says so in its environment
    settings.DEBUG = False
    monkeypatch.setenv("SEED_DEMO_DATABASE", "0")
    with pytest.raises(CommandError):
        call_command("seed_demo", stdout=StringIO())
    monkeypatch.setenv("SEED_DEMO_DATABASE", "1")
    call_command("seed_demo", stdout=StringIO())
    assert User.objects.filter(username="agent1").exists()
