"""The order system's question: may this booking go ahead?"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone, translation

from accounts import roles
from accounts.models import User
from compensation.models import BlacklistEntry
from compensation.services import system_busy
from risk.errors import InvalidInput, PermissionDenied

Status = User.AccountStatus


@dataclass(frozen=True)
class RiskDecision:
    decision: str  # "allow" or "deny"
    reasons: list[str]
    message: str = ""  # what the user is shown for a denial, in the asked language


def language_of(lang: str) -> str:
    """``zh``/``zh-CN``/``zh-hans`` … → ``zh-hans``; ``en``/``en-US`` … → ``en``;
    anything else is the platform's default (Chinese)."""
    return "en" if (lang or "").strip().lower().startswith("en") else "zh-hans"


def denial_message(*, lang: str) -> str:
    """The words every channel shows for a denied booking ("system busy"):
    the same as the workbench's own doors say to a blacklisted buyer."""
    with translation.override(language_of(lang)):
        return system_busy()


def _clean_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise InvalidInput("ip is an IPv4 or IPv6 address.", field="ip") from None


def risk_check(*, actor, account: str = "", ip: str = "", device: str = "", lang: str = "",
               now: datetime | None = None) -> RiskDecision:
    """May this booking go ahead? Deny when the account (its username) is
    frozen or flagged, or when an active blacklist entry matches the account,
    the IP or the device; otherwise allow. The platform shows a denial as
    "system busy": ``message`` carries those words in ``lang`` (Chinese by
    default), so the order system does not invent its own.

    An account the workbench does not know is judged by the blacklist alone
    (no reason of its own): the order system may know accounts before they
    reach here, and failing closed on a lookup miss would turn away real
    buyers. Two queries, whatever is asked. Only the order system's
    integration token and staff may ask.
    """
    if not (roles.is_integration(actor) or roles.is_agent(actor)):
        raise PermissionDenied("Only the order system and staff ask the risk check.")
    account, ip, device = (account or "").strip(), (ip or "").strip(), (device or "").strip()
    if not (account or ip or device):
        raise InvalidInput("Give account, ip or device.")
    if len(account) > 150:
        raise InvalidInput("account is at most 150 characters.", field="account")
    if len(device) > 128:
        raise InvalidInput("device is at most 128 characters.", field="device")
    ip = _clean_ip(ip) if ip else ""
    now = now or timezone.now()
    reasons = []
    if account:
        status = User.objects.filter(username=account).values_list("account_status", flat=True).first()
        if status == Status.FROZEN:
            reasons.append("account_frozen")
        elif status == Status.FLAGGED:
            reasons.append("account_flagged")
    wanted = Q()
    for kind, value in ((BlacklistEntry.Kind.ACCOUNT, account), (BlacklistEntry.Kind.IP, ip),
                        (BlacklistEntry.Kind.DEVICE, device)):
        if value:
            wanted |= Q(kind=kind, value=value)
    listed = set(BlacklistEntry.objects.filter(wanted, expires_at__gt=now).values_list("kind", flat=True))
    reasons += [f"{kind}_blacklisted" for kind in ("account", "ip", "device") if kind in listed]
    if not reasons:
        return RiskDecision("allow", reasons)
    return RiskDecision("deny", reasons, denial_message(lang=lang))
