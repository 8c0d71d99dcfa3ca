from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotFound, HttpResponseServerError, JsonResponse
from django.shortcuts import redirect
from django.template.loader import get_template, render_to_string

from accounts import roles


@login_required
def home(request):
    """Send each person to their own place."""
    if roles.is_agent(request.user):
        return redirect("console:queue")
    if roles.is_merchant_staff(request.user):
        return redirect("/merchant/")
    return redirect("/chat/")


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    return HttpResponseNotFound(render_to_string("404.html", request=request))


def server_error(request):
    # an outage met before any view (the session's table, the pool): a 503 to retry, not a 500
    import sys

    from core.errors import ServiceUnavailable, is_outage
    from core.middleware import domain_error_response

    if is_outage(sys.exc_info()[1]):
        return domain_error_response(request, ServiceUnavailable())
    if _wants_json(request):
        return JsonResponse({"code": "server_error", "detail": "Something went wrong on our side."}, status=500)
    # a static page: rendering must not depend on what just failed
    return HttpResponseServerError(get_template("500.html").template.source)
