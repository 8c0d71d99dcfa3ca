"""Every model has an admin; the ticket's state is read-only there."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from accounts.tests.factories import UserFactory
from tickets.tests.factories import ticket_in_state

OWN_APPS = {"accounts", "merchants", "tickets", "compensation"}


def test_every_model_is_registered():
    missing = [
        f"{m._meta.app_label}.{m.__name__}"
        for m in apps.get_models()
        if m._meta.app_label in OWN_APPS and m not in admin.site._registry
    ]
    assert missing == []


@pytest.mark.django_db
def test_every_changelist_loads_and_ticket_state_is_read_only(client, buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    for model in admin.site._registry:
        if model._meta.app_label not in OWN_APPS:
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="status"' not in html  # shown, not editable
    assert "assigned" in html or "Assigned" in html or "已分配" in html
