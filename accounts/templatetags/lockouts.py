"""``{% lockout_panel %}``: the login lockouts and the control that lifts
them, for supervisors, on a console page (the risk page shows it). Nothing,
and no query, for anyone else."""

from django import template

from accounts import roles

register = template.Library()


@register.inclusion_tag("accounts/_lockouts.html", takes_context=True)
def lockout_panel(context):
    request = context.get("request")
    if request is None or not roles.is_supervisor(request.user):
        return {"hidden": True}
    from accounts.views import panel_context

    return panel_context(request)
