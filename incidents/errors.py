from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied  # noqa: F401
from merchants.errors import UndoExpired  # noqa: F401  (one class per code: the cancellation's)


class IncidentNotFound(NotFound):
    default_detail = "Incident not found."


class IncidentClosed(Conflict):
    code = "incident_closed"
    default_detail = "The incident is closed."


class ReviewIncomplete(InvalidInput):
    code = "review_incomplete"
    default_detail = "Closing an incident needs its review: cause, what was done and preventive measures."


class UnknownShipment(NotFound):
    code = "unknown_shipment"
    default_detail = "No shipment with this carrier and tracking number."


class JobNotFound(NotFound):
    default_detail = "Bulk job not found."


class JobState(Conflict):
    code = "job_state"
    default_detail = "The job cannot do that in its current state."



class CouponFailureExists(Conflict):
    code = "coupon_failure_exists"
    default_detail = "This campaign code is already registered as a failed coupon."
