import pytest
from django.db import connection

from core.db_router import analytic_reads
from tests.concurrency import requires_postgres
from tickets.models import Ticket


def _setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reports_get_their_session_settings_for_their_transaction_only(settings):
    requires_postgres()
    settings.REPORT_DB_SETTINGS = {"work_mem": "48MB", "max_parallel_workers_per_gather": 0}
    before = _setting("work_mem")
    assert before != "48MB"
    assert connection.get_autocommit()

    with analytic_reads(Ticket):
        assert not connection.get_autocommit()  # one transaction for the report's queries
        assert _setting("work_mem") == "48MB"
        assert _setting("max_parallel_workers_per_gather") == "0"
        assert Ticket.objects.count() == 0

    # SET LOCAL: gone with the transaction, so a pooled connection's next user never sees it
    assert connection.get_autocommit()
    assert _setting("work_mem") == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failing_report_leaves_neither_settings_nor_a_transaction_behind(settings):
    requires_postgres()
    settings.REPORT_DB_SETTINGS = {"work_mem": "48MB"}
    before = _setting("work_mem")
    with pytest.raises(ZeroDivisionError):
        with analytic_reads(Ticket):
            1 / 0
    assert connection.get_autocommit()
    assert _setting("work_mem") == before


@pytest.mark.django_db
def test_elsewhere_the_block_is_plain_reads(settings):
    settings.REPORT_DB_SETTINGS = {"work_mem": "48MB"}
    with analytic_reads(Ticket):
        assert Ticket.objects.count() == 0
