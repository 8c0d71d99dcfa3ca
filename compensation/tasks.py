from celery import shared_task


@shared_task(name="compensation.tasks.blacklist_daily_counts")
def blacklist_daily_counts() -> int:
    from compensation.services import blacklist_from_daily_counts

    return len(blacklist_from_daily_counts())
