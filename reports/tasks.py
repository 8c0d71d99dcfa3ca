"""Background jobs of the reports: Celery beat in production, inline in the embedded default."""

from celery import shared_task


@shared_task(name="reports.tasks.refresh_report_rollups")
def refresh_report_rollups() -> int:
    """Closed days into ``DailyFigure`` (``reports.services.refresh_rollups``)."""
    from reports.services import refresh_rollups

    return refresh_rollups()
