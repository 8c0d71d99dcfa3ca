"""API tokens expire, are revoked on logout and on a password change, and
every login gets a key of its own; the integration account's token does not
expire."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import roles
from accounts.models import ApiToken, User
from accounts.services import create_user, issue_api_token
from accounts.tests.factories import PASSWORD, UserFactory

TOKEN = "/api/v1/auth/token/"
LOGOUT = "/api/v1/auth/logout/"
TICKETS = "/api/v1/tickets/"


def _login(api, user, password=PASSWORD):
    return api(None).post(TOKEN, {"username": user.username, "password": password}, format="json")


def _with(api, key: str):
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.django_db
def test_every_login_gets_a_new_key_and_each_device_keeps_its_own(api, agent):
    first, second = _login(api, agent).json(), _login(api, agent).json()
    assert first["token"] != second["token"]
    assert ApiToken.objects.filter(user=agent).count() == 2
    # only the digest is stored
    assert not ApiToken.objects.filter(digest=first["token"]).exists()
    assert _with(api, first["token"]).get(TICKETS).status_code == 200
    assert _with(api, second["token"]).get(TICKETS).status_code == 200


@pytest.mark.django_db
def test_login_answer_says_when_the_token_expires_by_role(api, agent, supervisor, buyer, merchant_user):
    now = timezone.now()
    for user, hours in ((agent, 12), (supervisor, 12), (merchant_user, 24), (buyer, 7 * 24)):
        body = _login(api, user).json()
        expires = timezone.datetime.fromisoformat(body["expires_at"])
        assert timedelta(hours=hours) - timedelta(minutes=1) < expires - now < timedelta(hours=hours, minutes=1)


@pytest.mark.django_db
def test_an_expired_token_is_refused_401(api, agent):
    # given a token issued 13 hours ago (agents' tokens live 12)
    fresh = issue_api_token(user=agent)
    old = issue_api_token(user=agent, now=timezone.now() - timedelta(hours=13))
    # when / then
    response = _with(api, old.key).get(TICKETS)
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired" and "expired" in response.json()["detail"]
    assert _with(api, fresh.key).get(TICKETS).status_code == 200


@pytest.mark.django_db
def test_a_tiny_ttl_expires_with_the_clock(api, agent, settings, monkeypatch):
    settings.API_TOKEN_TTL_HOURS = {**settings.API_TOKEN_TTL_HOURS, "agent": 1}
    key = _login(api, agent).json()["token"]
    assert _with(api, key).get(TICKETS).status_code == 200
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1, seconds=1))
    assert _with(api, key).get(TICKETS).status_code == 401


@pytest.mark.django_db
def test_logout_revokes_only_the_callers_token(api, agent):
    phone, laptop = _login(api, agent).json()["token"], _login(api, agent).json()["token"]
    response = _with(api, phone).post(LOGOUT)
    assert response.status_code == 204
    refused = _with(api, phone).get(TICKETS)
    assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"
    assert _with(api, laptop).get(TICKETS).status_code == 200
    # logging out again with the revoked token: 401, not a crash
    assert _with(api, phone).post(LOGOUT).status_code == 401
    assert api(None).post(LOGOUT).status_code == 401


@pytest.mark.django_db
def test_logout_with_a_session_ends_the_session(client, agent):
    client.force_login(agent)
    assert client.post(LOGOUT).status_code == 204
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_password_change_revokes_every_token_of_the_user(api, agent, other_agent):
    keys = [_login(api, agent).json()["token"] for _ in range(2)]
    other = _login(api, other_agent).json()["token"]
    agent.set_password("a-new-pass-4321")
    agent.save()
    for key in keys:
        assert _with(api, key).get(TICKETS).status_code == 401
    assert _with(api, other).get(TICKETS).status_code == 200
    # the new password gets a new token
    assert _with(api, _login(api, agent, "a-new-pass-4321").json()["token"]).get(TICKETS).status_code == 200


@pytest.mark.django_db
def test_a_password_changed_in_the_admin_revokes_the_tokens(api, client, agent):
    key = _login(api, agent).json()["token"]
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    response = client.post(f"/admin/accounts/user/{agent.pk}/password/",
                           {"password1": "admin-set-9876x", "password2": "admin-set-9876x", "usable_password": "true"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _with(api, key).get(TICKETS).status_code == 401


@pytest.mark.django_db
def test_saving_a_user_without_a_new_password_keeps_the_tokens(api, agent):
    key = _login(api, agent).json()["token"]
    agent.display_name = "王芳芳"
    agent.save()
    assert _with(api, key).get(TICKETS).status_code == 200


@pytest.mark.django_db
def test_the_integration_token_does_not_expire(api):
    system = create_user(username="order-system", password=None, role=roles.INTEGRATION)
    issued = issue_api_token(user=system, now=timezone.now() - timedelta(days=3650))
    assert issued.expires_at is None
    response = _with(api, issued.key).get("/api/v1/risk/check/?account=nobody")
    assert response.status_code == 200
    # it has no password to log in with
    assert _login(api, system, "").status_code == 400


@pytest.mark.django_db
def test_an_inactive_users_token_is_refused(api, agent):
    key = _login(api, agent).json()["token"]
    agent.is_active = False
    agent.save()
    assert _with(api, key).get(TICKETS).status_code == 401


@pytest.mark.django_db
def test_malformed_token_headers_are_401(api, agent):
    for header in ("Token", "Token a b", "Token \u00e9t\u00e9"):
        client = api(None)
        client.credentials(HTTP_AUTHORIZATION=header)
        response = client.get(TICKETS)
        assert response.status_code == 401, header
        assert response.json()["code"] == "not_authenticated"


def test_issue_api_token_management_command(db, capsys):
    from django.core.management import call_command

    create_user(username="order-system", password=None, role=roles.INTEGRATION)
    call_command("issue_api_token", "order-system")
    out = capsys.readouterr().out
    assert "Authorization: Token " in out and "never" in out
    assert ApiToken.objects.filter(user__username="order-system").count() == 1


def test_issue_api_token_creates_the_machine_account_on_a_new_installation(db, capsys):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--create"):
        call_command("issue_api_token", "order-system")
    call_command("issue_api_token", "order-system", "--create", "订单系统")
    out = capsys.readouterr().out
    system = User.objects.get(username="order-system")
    assert "created the machine account" in out and "Authorization: Token " in out
    assert roles.is_integration(system) and not roles.is_agent(system) and not system.has_usable_password()
    assert system.display_name == "订单系统"
    call_command("issue_api_token", "order-system", "--create")  # exists: only a new token
    assert User.objects.filter(username="order-system").count() == 1
    assert ApiToken.objects.filter(user=system).count() == 2

