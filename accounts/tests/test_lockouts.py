"""Failed logins lock the account and, separately, the real client address,
on the API and on the login form; a header the client writes changes
nothing; a supervisor lifts a lock, an agent cannot."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import RequestFactory

from accounts.api import LoginThrottle
from accounts.logins import client_ip
from accounts.models import LockoutRelease, LoginEvent
from accounts.tests.factories import PASSWORD, UserFactory

TOKEN = "/api/v1/auth/token/"
LOGIN = "/accounts/login/"
RESET = "/api/v1/auth/lockouts/reset/"
LIMIT = 10  # AXES_FAILURE_LIMIT


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


def _token(api, username, password, ip="198.51.100.7", **extra):
    return api(None).post(TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=ip,
                          **extra)


@pytest.mark.django_db
def test_forty_attempts_from_forty_forwarded_addresses_are_locked_out(api, agent):
    # given one client that writes a new X-Forwarded-For on every try
    answers = [
        _token(api, agent.username, f"guess-{n}", ip="203.0.113.40", HTTP_X_FORWARDED_FOR=f"10.0.{n}.1")
        for n in range(40)
    ]
    # then the header is ignored: the limit holds, and the account is locked
    assert [a.status_code for a in answers[: LIMIT - 1]] == [400] * (LIMIT - 1)
    assert {a.status_code for a in answers[LIMIT - 1:]} == {429}
    assert answers[LIMIT - 1].json()["code"] == "locked_out"
    assert answers[LIMIT - 1]["Retry-After"]
    right = _token(api, agent.username, PASSWORD, ip="203.0.113.40", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert right.status_code == 429 and right.json()["code"] in ("locked_out", "throttled")
    assert not LoginEvent.objects.exists()


@pytest.mark.django_db
def test_per_account_lock_does_not_lock_other_accounts(api, agent, other_agent):
    # given the agent's password guessed from ten different real addresses
    for n in range(LIMIT):
        _token(api, agent.username, f"guess-{n}", ip=f"198.51.100.{n + 1}")
    # then the agent is locked from anywhere, even with the right password
    locked = _token(api, agent.username, PASSWORD, ip="192.0.2.200")
    assert locked.status_code == 429 and locked.json()["code"] == "locked_out"
    # and another account from one of those addresses is not
    assert _token(api, other_agent.username, PASSWORD, ip="198.51.100.1").status_code == 200


@pytest.mark.django_db
def test_per_address_lock_covers_every_account_from_it(api, agent):
    # given ten different usernames tried from one address (password spraying)
    for n in range(LIMIT):
        _token(api, f"nobody{n}", "123456", ip="192.0.2.66")
    # then the right password of a real account from that address is refused
    assert _token(api, agent.username, PASSWORD, ip="192.0.2.66").status_code == 429
    # and the same account from elsewhere gets in
    assert _token(api, agent.username, PASSWORD, ip="192.0.2.67").status_code == 200


@pytest.mark.django_db
def test_the_form_refuses_the_right_password_after_35_wrong_ones(client, agent):
    for n in range(35):
        client.post(LOGIN, {"username": agent.username, "password": f"wrong-{n}"}, REMOTE_ADDR="198.51.100.35")
    response = client.post(LOGIN, {"username": agent.username, "password": PASSWORD}, REMOTE_ADDR="198.51.100.35")
    assert response.status_code == 429
    html = response.content.decode()
    assert "data-locked-out" in html and "登录失败次数过多" in html
    assert "_auth_user_id" not in client.session
    # in English too
    client.cookies["django_language"] = "en"
    english = client.post(LOGIN, {"username": agent.username, "password": PASSWORD}, REMOTE_ADDR="198.51.100.99")
    assert english.status_code == 429 and "Too many failed sign-ins" in english.content.decode()


@pytest.mark.django_db
def test_the_form_and_the_api_count_the_same_failures(api, client, agent):
    for n in range(LIMIT // 2):
        client.post(LOGIN, {"username": agent.username, "password": f"wrong-{n}"}, REMOTE_ADDR="198.51.100.50")
    for n in range(LIMIT // 2):
        _token(api, agent.username, f"guess-{n}", ip="198.51.100.51")
    assert _token(api, agent.username, PASSWORD, ip="198.51.100.52").status_code == 429


@pytest.mark.django_db
def test_a_supervisor_lifts_a_lock_and_it_is_audited(api, agent, supervisor):
    for n in range(LIMIT):
        _token(api, agent.username, f"guess-{n}", ip="198.51.100.60")
    assert _token(api, agent.username, PASSWORD, ip="198.51.100.61").status_code == 429
    # when the supervisor lifts the account's and the address's lock
    response = api(supervisor).post(RESET, {"username": agent.username, "ip": "198.51.100.60"}, format="json")
    # then
    assert response.status_code == 200
    assert response.json()["cleared"] >= 1
    release = LockoutRelease.objects.get()
    assert (release.actor, release.username, release.ip) == (supervisor, agent.username, "198.51.100.60")
    assert _token(api, agent.username, PASSWORD, ip="198.51.100.60").status_code == 200


@pytest.mark.django_db
def test_an_agent_cannot_lift_a_lock(api, agent, other_agent):
    for n in range(LIMIT):
        _token(api, other_agent.username, f"guess-{n}", ip="198.51.100.70")
    response = api(agent).post(RESET, {"username": other_agent.username}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert api(None).post(RESET, {"username": other_agent.username}, format="json").status_code == 401
    assert _token(api, other_agent.username, PASSWORD, ip="198.51.100.71").status_code == 429
    assert not LockoutRelease.objects.exists()


@pytest.mark.django_db
def test_lift_needs_a_username_or_a_valid_address(api, supervisor):
    client = api(supervisor)
    for body in ({}, {"username": ""}, {"ip": "not-an-ip"}, {"ip": "1" * 50}, {"username": "x" * 151}):
        response = client.post(RESET, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["code"] == "invalid"


@pytest.mark.django_db
def test_the_risk_page_shows_the_locks_to_supervisors_and_lifts_one(api, client, agent, supervisor):
    for n in range(LIMIT):
        _token(api, agent.username, f"guess-{n}", ip=f"198.51.100.{100 + n}")
    client.force_login(supervisor)
    page = client.get("/console/risk/").content.decode()
    assert 'id="lockouts"' in page and f'data-lockout="account:{agent.username}"' in page
    lifted = client.post("/console/lockouts/lift/", {"username": agent.username, "back": "/console/risk/"},
                         HTTP_HX_REQUEST="true")
    assert lifted.status_code == 200
    assert f'data-lockout="account:{agent.username}"' not in lifted.content.decode()
    assert _token(api, agent.username, PASSWORD, ip="192.0.2.1").status_code == 200
    # without htmx: back to the page it came from
    assert client.post("/console/lockouts/lift/", {"username": "x", "back": "/console/risk/"})["Location"] == (
        "/console/risk/")
    assert client.post("/console/lockouts/lift/", {"username": "x", "back": "https://evil.example/"})[
        "Location"] == "/"
    assert client.post("/console/lockouts/lift/", {"ip": "nope"}, HTTP_HX_REQUEST="true").status_code == 400
    # an agent sees no panel and cannot post to it
    client.force_login(agent)
    assert 'id="lockouts"' not in client.get("/console/risk/").content.decode()
    assert client.post("/console/lockouts/lift/", {"username": agent.username}).status_code == 403


def test_the_client_address_ignores_forwarded_for_unless_proxies_are_trusted(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 10.0.0.1")
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "192.0.2.9"
    settings.TRUSTED_PROXY_COUNT = 1  # one balancer: it appended what connected to it
    assert client_ip(request) == "10.0.0.1"
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request) == "6.6.6.6"
    bad = RequestFactory().get("/", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="not-an-ip")
    assert client_ip(bad) is None


def test_the_drf_throttle_keys_on_the_real_address():
    request = RequestFactory().post(TOKEN, REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert LoginThrottle().get_ident(request) == "192.0.2.9"


@pytest.mark.django_db
def test_a_locked_admin_login_is_refused_too(client):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    for n in range(LIMIT):
        client.post("/admin/login/", {"username": "root", "password": f"x{n}"}, REMOTE_ADDR="198.51.100.80")
    response = client.post("/admin/login/", {"username": root.username, "password": PASSWORD},
                           REMOTE_ADDR="198.51.100.81")
    assert response.status_code == 429


@pytest.mark.django_db(transaction=True)
async def test_the_lockout_page_under_asgi(async_client, agent):
    # AxesMiddleware's async path hands the lockout callable other arguments than its sync one
    for n in range(LIMIT):
        await async_client.post(LOGIN, {"username": agent.username, "password": f"wrong-{n}"})
    response = await async_client.post(LOGIN, {"username": agent.username, "password": PASSWORD})
    assert response.status_code == 429 and "data-locked-out" in response.content.decode()
    api = await async_client.post(TOKEN, {"username": agent.username, "password": PASSWORD},
                                  content_type="application/json")
    assert api.status_code == 429 and api.json()["code"] == "locked_out"
    # the views ran on the sync thread: close its database connection there
    await sync_to_async(connections.close_all)()
