"""The integration role and the login history that ``risk`` judges dormant accounts by."""

import pytest

from accounts import roles
from accounts.models import ApiToken, LoginEvent
from accounts.services import create_user, record_login
from accounts.tests.factories import PASSWORD, UserFactory
from core.errors import InvalidInput


@pytest.mark.django_db
def test_integration_role_is_a_group_with_its_own_permission():
    system = create_user(username="order-system", password=None, role=roles.INTEGRATION)
    assert list(system.groups.values_list("name", flat=True)) == ["integration"]
    assert roles.is_integration(system) and roles.role_of(system) == "integration"
    assert not (roles.is_agent(system) or roles.is_buyer(system) or roles.is_merchant_staff(system))
    for role in (roles.BUYER, roles.AGENT, roles.SUPERVISOR, roles.MERCHANT_STAFF):
        assert not roles.is_integration(UserFactory(role=role))
    system.is_active = False
    system.save()
    assert not roles.is_integration(system)


@pytest.mark.django_db
def test_the_integration_token_sees_no_one_elses_data(api, order):
    system = create_user(username="order-system", password=None, role=roles.INTEGRATION)
    client = api(system)
    assert client.get("/api/v1/orders/").json()["count"] == 0
    assert client.get(f"/api/v1/orders/{order.pk}/").status_code == 404


@pytest.mark.django_db
def test_token_exchange_is_recorded_with_ip_and_device(api, buyer):
    response = api(None).post("/api/v1/auth/token/", {"username": buyer.username, "password": PASSWORD},
                              format="json", REMOTE_ADDR="203.0.113.9", HTTP_X_DEVICE_ID="iphone-7f3a")
    assert response.status_code == 200
    event = LoginEvent.objects.get()
    assert (event.user, event.source, event.ip, event.device) == (buyer, "token", "203.0.113.9", "iphone-7f3a")
    # a wrong password is no login
    api(None).post("/api/v1/auth/token/", {"username": buyer.username, "password": "nope"}, format="json")
    assert LoginEvent.objects.count() == 1
    assert ApiToken.objects.filter(user=buyer).count() == 1


@pytest.mark.django_db
def test_browser_login_is_recorded_with_a_user_agent_hash(client, buyer):
    response = client.post("/accounts/login/", {"username": buyer.username, "password": PASSWORD},
                           HTTP_USER_AGENT="Mozilla/5.0 (iPhone)", REMOTE_ADDR="198.51.100.4")
    assert response.status_code == 302
    event = LoginEvent.objects.get()
    assert (event.user, event.source, event.ip) == (buyer, "session", "198.51.100.4")
    assert event.device.startswith("ua:") and len(event.device) == 19
    client.logout()
    client.post("/accounts/login/", {"username": buyer.username, "password": PASSWORD},
                HTTP_USER_AGENT="Mozilla/5.0 (iPhone)", REMOTE_ADDR="198.51.100.4")
    assert LoginEvent.objects.filter(user=buyer).values("device").distinct().count() == 1
    assert LoginEvent.objects.count() == 2


@pytest.mark.django_db
def test_record_login_refuses_an_unknown_source(buyer):
    with pytest.raises(InvalidInput):
        record_login(user=buyer, ip=None, device="", source="carrier-pigeon")
