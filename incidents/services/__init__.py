"""Every write of ``incidents``, one module per seam:

- ``incidents``: open an incident, link tickets to it, close it with the review,
  and the deadline sweep (a passed deadline escalates the owning tier and alerts);
- ``logistics``: carrier events in (each stored once, an exception becomes the
  buyer's ticket) and the incident rules they feed, with their periodic sweep;
- ``bulk``: create a bulk job, start it, undo a finished cancel job;
- ``runner``: run a job item by item through the owning app's services,
  resume jobs whose worker died;
- ``coupons``: a failed campaign coupon: register the affected buyers, compensate
  them in one bulk job through the remedy service, once per buyer.

Public entry points own their transaction; the helpers the modules share run
inside the caller's. Reads (a job, its dry run) are in ``incidents/selectors.py``.
"""

from incidents.services.bulk import create_bulk_job, start_job, undo_job
from incidents.services.coupons import Registered, compensate, create_coupon_failure, register_buyers
from incidents.services.incidents import (
    TicketQuery,
    close_incident,
    link_tickets,
    open_incident,
    sweep_incident_deadlines,
)
from incidents.services.logistics import IngestResult, ingest_logistics_event, sweep_incident_rules
from incidents.services.runner import resume_stalled_jobs, run_job, run_job_in_one_loop

__all__ = [
    "IngestResult", "Registered", "TicketQuery", "compensate", "create_coupon_failure", "register_buyers", "close_incident", "create_bulk_job", "ingest_logistics_event", "link_tickets",
    "open_incident", "resume_stalled_jobs", "run_job", "run_job_in_one_loop", "start_job", "sweep_incident_deadlines", "sweep_incident_rules",
    "undo_job",
]
