from celery import shared_task


@shared_task(name="risk.tasks.detect_stolen_accounts")
def detect_stolen_accounts() -> int:
    """The dormant-burst rule over the last window; returns the new hits."""
    from risk.services import detect_stolen_accounts as detect

    return len(detect().created)
