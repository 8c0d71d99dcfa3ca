"""Login lockouts (django-axes): the answer a locked-out login gets, and the
list of current lockouts a supervisor may lift.

Axes records every failed ``authenticate()`` (the login form, the admin and
``POST /api/v1/auth/token/``) per account and per client address
(``AXES_LOCKOUT_PARAMETERS``); ``AXES_FAILURE_LIMIT`` failures within
``AXES_COOLOFF_TIME`` lock either until the cool-off has passed (each further
try restarts it) or a supervisor lifts the lock (``services.lift_lockout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Max, Sum
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext

CODE = "locked_out"


def cooloff_minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def locked_out_detail() -> str:
    return gettext(
        "Too many failed sign-ins for this account or from this address. Try again in %(minutes)d minutes, "
        "or ask a supervisor to lift the lock."
    ) % {"minutes": cooloff_minutes()}


def retry_after_seconds() -> str:
    return str(int(settings.AXES_COOLOFF_TIME.total_seconds()))


def lockout_response(request, *args, **kwargs):
    """``AXES_LOCKOUT_CALLABLE``: what AxesMiddleware answers a login that axes
    refused or that just hit the limit: 429, as JSON on the API and as the
    login page with the message elsewhere (the form, the admin's login).
    Takes the request only: axes passes other arguments in another order on
    its async path."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": CODE, "detail": locked_out_detail()}, status=429,
                            headers={"Retry-After": retry_after_seconds()})
    # an unbound form: binding it would try the password (and count a failure) again
    form = AuthenticationForm(request, initial={"username": (request.POST.get("username") or "")[:150]})
    context = {"form": form, "locked_out": True, "locked_out_detail": locked_out_detail(),
               "next": request.POST.get("next") or request.GET.get("next") or ""}
    response = render(request, "accounts/login.html", context, status=429)
    response["Retry-After"] = retry_after_seconds()
    return response


@dataclass(frozen=True)
class Lockout:
    kind: str  # "account" or "address"
    value: str
    failures: int
    last_at: datetime


def current_lockouts(*, limit: int = 50) -> list[Lockout]:
    """Accounts and addresses locked now: failures within the cool-off at or
    over the limit. Two queries, whatever the number of failure records."""
    from axes.models import AccessAttempt

    recent = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME)
    found = []
    for kind, field in (("account", "username"), ("address", "ip_address")):
        known = recent.exclude(**{f"{field}__isnull": True})
        if field == "username":
            known = known.exclude(username="")
        rows = (known.values(field).annotate(failures=Sum("failures_since_start"), last_at=Max("attempt_time"))
                .filter(failures__gte=settings.AXES_FAILURE_LIMIT).order_by("-last_at")[:limit])
        found += [Lockout(kind=kind, value=row[field], failures=row["failures"], last_at=row["last_at"])
                  for row in rows]
    return sorted(found, key=lambda lockout: lockout.last_at, reverse=True)
