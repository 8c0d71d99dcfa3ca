"""Background work for incidents (Celery in production, inline in the embedded default)."""

from celery import shared_task


@shared_task(acks_late=True)
def run_bulk_job(job_id: int) -> int:
    """Run (or resume) a bulk job; re-delivery after a worker crash resumes it."""
    from incidents.services import run_job_in_one_loop

    return run_job_in_one_loop(job_id=job_id).processed


@shared_task
def sweep_incident_rules() -> int:
    from incidents.services import sweep_incident_rules as sweep

    return len(sweep())


@shared_task
def sweep_incident_deadlines() -> int:
    from incidents.services import sweep_incident_deadlines as sweep

    return len(sweep())


@shared_task
def resume_stalled_jobs() -> int:
    from incidents.services import resume_stalled_jobs as resume

    return len(resume())


@shared_task
def push_board() -> int:
    """The market board's figures to the supervisors' consoles (a ``board`` frame)."""
    from incidents.events import push_board as push

    return push()
