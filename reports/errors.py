"""The reports' own refusals: a period that cannot be read, runs backwards or is too long (400 each)."""

from core.errors import InvalidInput, PermissionDenied  # noqa: F401


class InvalidDate(InvalidInput):
    code = "invalid_date"
    default_detail = "Dates are YYYY-MM-DD."


class PeriodReversed(InvalidInput):
    code = "period_reversed"
    default_detail = "'from' is after 'to'."


class PeriodTooLong(InvalidInput):
    code = "period_too_long"
    default_detail = "The period is longer than a report may cover."


class InvalidGrouping(InvalidInput):
    code = "invalid_group_by"
    default_detail = "group_by is 'agent' or 'queue'."
