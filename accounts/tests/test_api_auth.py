import pytest

from accounts import roles
from accounts.models import ApiToken
from accounts.roles import role_of
from accounts.services import create_user, set_role
from accounts.tests.factories import PASSWORD, UserFactory
from core.errors import InvalidInput


@pytest.mark.django_db
def test_token_for_good_credentials(api, agent):
    response = api(None).post("/api/v1/auth/token/", {"username": agent.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert ApiToken.objects.get(user=agent).prefix == body["token"][:6]
    assert body["role"] == "agent" and body["expires_at"]
    # the token works
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert client.get("/api/v1/tickets/").status_code == 200


@pytest.mark.django_db
def test_wrong_password_and_bad_input(api, agent):
    wrong = api(None).post("/api/v1/auth/token/", {"username": agent.username, "password": "nope"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_credentials"
    missing = api(None).post("/api/v1/auth/token/", {"username": agent.username}, format="json")
    assert missing.status_code == 400 and missing.json()["code"] == "invalid"
    bad_token = api(None)
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad_token.get("/api/v1/tickets/").status_code == 401
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_roles_are_groups_with_permissions():
    user = create_user(username="lead", password=PASSWORD, role=roles.SUPERVISOR, display_name="赵敏")
    assert list(user.groups.values_list("name", flat=True)) == ["supervisor"]
    assert user.has_perm(roles.PERM_AGENT) and user.has_perm(roles.PERM_SUPERVISOR)
    assert role_of(user) == "supervisor"
    set_role(user=user, role=roles.AGENT)
    assert role_of(user) == "agent"
    assert list(user.groups.values_list("name", flat=True)) == ["agent"]
    with pytest.raises(InvalidInput):
        set_role(user=user, role="king")
    with pytest.raises(InvalidInput):
        create_user(username="x", password=PASSWORD, role="king")


@pytest.mark.django_db
def test_inactive_staff_lose_staff_powers():
    user = UserFactory(role=roles.AGENT)
    user.is_active = False
    user.save()
    assert not roles.is_agent(user)
