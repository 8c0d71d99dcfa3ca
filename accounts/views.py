"""Account pages: the supervisor's control that lifts a login lockout (shown
on the console's risk page through ``{% lockout_panel %}``)."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from accounts import roles
from accounts.lockouts import current_lockouts
from accounts.services import lift_lockout as lift
from core.errors import DomainError


def panel_context(request, **extra) -> dict:
    return {"lockouts": current_lockouts(), "back": request.get_full_path(), **extra}


@require_POST
def lift_lockout(request):
    """Lift one lock (a row's button) or the one typed in (username and/or
    address). htmx swaps the panel back in; without htmx, back to the page."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not roles.is_supervisor(request.user):
        raise PermissionDenied
    status, message, error = 200, "", ""
    try:
        release = lift(actor=request.user, username=request.POST.get("username", ""),
                       ip=request.POST.get("ip") or None)
    except DomainError as exc:
        status = exc.status
        error = gettext("Give a username or an IP address (a valid one).") if exc.status == 400 else str(exc.detail)
    else:
        message = gettext("Lock lifted: %(who)s.") % {"who": " / ".join(v for v in (release.username, release.ip) if v)}
    if request.headers.get("HX-Request"):
        context = {"lockouts": current_lockouts(), "back": request.POST.get("back", ""), "message": message,
                   "error": error}
        return render(request, "accounts/_lockouts.html", context, status=status)
    back = request.POST.get("back") or "/"
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = "/"
    if status != 200:
        return render(request, "accounts/_lockouts.html",
                      {"lockouts": current_lockouts(), "back": back, "error": error}, status=status)
    return redirect(back)
