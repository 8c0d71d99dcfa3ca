"""Parallel detector runs and parallel actions on one account (PostgreSQL)."""

import pytest

from accounts.models import User
from risk import services
from risk.errors import AlreadyFrozen, VerificationRequired
from risk.models import AccountAction, RiskHit
from risk.tests.factories import NOW, buyer_account, stolen_history
from tests.concurrency import race, requires_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_parallel_detector_runs_open_one_hit():
    requires_postgres()
    stolen_history()
    results, errors = race(lambda i: services.detect_stolen_accounts(now=NOW), 4)
    assert errors == []
    assert sum(len(r.created) for r in results) == 1
    assert RiskHit.objects.count() == 1


def test_parallel_freezes_freeze_once(supervisor):
    requires_postgres()
    victim = buyer_account()
    results, errors = race(lambda i: services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号"), 6)
    assert len(results) == 1 and len(errors) == 5 and all(isinstance(e, AlreadyFrozen) for e in errors)
    assert AccountAction.objects.filter(kind="freeze").count() == 1


def test_one_verification_unfreezes_once(agent, supervisor):
    requires_postgres()
    victim = buyer_account(phone="13900000001")
    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    check = services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000001", id_last4_confirmed=True)
    services.unfreeze_account(actor=agent, user_id=victim.pk, verification_id=check.pk)
    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="又被盗")

    results, errors = race(lambda i: services.unfreeze_account(actor=agent, user_id=victim.pk,
                                                               verification_id=check.pk), 4)

    assert results == [] and all(isinstance(e, VerificationRequired) for e in errors)  # used up before
    fresh = services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000001", id_last4_confirmed=True)
    results, errors = race(lambda i: services.unfreeze_account(actor=agent, user_id=victim.pk,
                                                               verification_id=fresh.pk), 4)
    assert len(results) == 1 and len(errors) == 3
    assert User.objects.get(pk=victim.pk).account_status == "active"
    assert AccountAction.objects.filter(kind="unfreeze").count() == 2
