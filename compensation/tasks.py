from celery import shared_task


@shared_task(name="compensation.tasks.blacklist_recent_counts")
def blacklist_recent_counts() -> int:
    from compensation.services import blacklist_from_recent_counts

    return len(blacklist_from_recent_counts())
