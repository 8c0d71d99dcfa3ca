"""Pure decisions of ``tickets``: no writes, and no queries beyond resolving
who is asking once.

Who may see a ticket is decided here for every door: the selectors turn it
into a query filter (``visibility_filter``), the chat socket and its batch
writer apply it to a locked row (``can_view``); a test holds the two forms to
the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from accounts import roles
from tickets import sla

STAFF_ROLES = (roles.AGENT, roles.SUPERVISOR, roles.HEAD)
# the parties in which a merchant is in the conversation (tickets.models.Party values)
MERCHANT_PARTIES = ("merchant", "both")


@dataclass(frozen=True)
class Viewer:
    """Who is asking, as the rules need it; resolved once per request or socket."""

    user_id: int
    role: str | None
    name: str = ""
    merchant_id: int | None = None
    username: str = ""

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def message_role(self) -> str:
        """The author role their messages carry (``Message.AuthorRole``)."""
        if self.is_staff:
            return "agent"
        if self.role == roles.MERCHANT_STAFF:
            return "merchant"
        return "buyer"


def viewer_of(user) -> Viewer:
    """Two or three queries (the permissions, the merchant link); call once."""
    from merchants.selectors import merchant_id_for

    role = roles.role_of(user)
    merchant_id = merchant_id_for(user=user) if role == roles.MERCHANT_STAFF else None
    return Viewer(user_id=user.pk, role=role, name=getattr(user, "name", "") or "", merchant_id=merchant_id,
                  username=user.username)


def can_view(viewer: Viewer, *, buyer_id: int | None, merchant_id: int | None, party: str) -> bool:
    """Staff see every ticket; merchant staff the tickets that involve their
    merchant as a party; a buyer their own."""
    if viewer.is_staff:
        return True
    if viewer.role == roles.MERCHANT_STAFF:
        return viewer.merchant_id is not None and merchant_id == viewer.merchant_id and party in MERCHANT_PARTIES
    if viewer.role == roles.BUYER:
        return buyer_id is not None and buyer_id == viewer.user_id
    return False


def can_view_ticket(viewer: Viewer, ticket) -> bool:
    """``can_view`` of a ticket already read: a ``Ticket`` or any row that
    names its ``buyer_id``, ``merchant_id`` and ``party``."""
    return can_view(viewer, buyer_id=ticket.buyer_id, merchant_id=ticket.merchant_id, party=ticket.party)


def visibility_filter(viewer: Viewer) -> Q | None:
    """``can_view`` as a query filter; None means every ticket."""
    if viewer.is_staff:
        return None
    if viewer.role == roles.MERCHANT_STAFF:
        if viewer.merchant_id is None:
            return Q(pk__in=[])
        return Q(merchant_id=viewer.merchant_id, party__in=MERCHANT_PARTIES)
    if viewer.role == roles.BUYER:
        return Q(buyer_id=viewer.user_id)
    return Q(pk__in=[])


def sees_internal_notes(viewer: Viewer) -> bool:
    return viewer.is_staff


def may_write(*, status: str) -> bool:
    """Anyone who may see a ticket may write in its conversation until it is
    closed or merged into another (a resolved ticket still takes a "thank
    you" or a follow-up; a merged one's conversation continues in its target)."""
    return status not in ("closed", "merged")


# --- duplicates merged (issue #13 item 2) -----------------------------------------

# the states a ticket merges from, and into (``Ticket.ACTIVE``)
MERGEABLE_STATES = ("open", "assigned", "waiting_merchant", "waiting_buyer")


def merge_refusal(*, source_id: int, target_id: int, source_buyer_id: int | None, target_buyer_id: int | None,
                  target_status: str) -> str | None:
    """Why ``source`` may not be merged into ``target`` (an error code), or
    None. The source's own state is the state machine's to judge
    (``illegal_transition``). Only one buyer's tickets merge: a merge of two
    buyers' tickets would show each the other's conversation."""
    if source_id == target_id:
        return "merge_into_self"
    if target_status not in MERGEABLE_STATES:
        return "merge_target_closed"
    if source_buyer_id is None or source_buyer_id != target_buyer_id:
        return "merge_buyer_mismatch"
    return None


def may_rate(*, viewer: Viewer, buyer_id: int | None, party: str, status: str, already_rated: bool) -> bool:
    """The ticket's own buyer rates it 0–10, once, after resolution (a
    merchant's ticket has no buyer to rate it)."""
    return (viewer.role == roles.BUYER and buyer_id is not None and buyer_id == viewer.user_id
            and party != "merchant" and status in ("resolved", "closed") and not already_rated)


# --- tiers are roles (the emergency plan's ladder) ------------------------------

# who owns each tier: an agent, a team lead (the supervisor role), the head;
# at "all levels" every level works the ticket and the head owns it
TIER_OWNER_ROLES: dict[int, str] = {
    sla.TIER_AGENT: roles.AGENT,
    sla.TIER_TEAM_LEAD: roles.SUPERVISOR,
    sla.TIER_HEAD: roles.HEAD,
    sla.TIER_ALL_LEVELS: roles.HEAD,
}
TIER_OWNER_RANKS: dict[int, int] = {
    sla.TIER_AGENT: roles.RANK_AGENT,
    sla.TIER_TEAM_LEAD: roles.RANK_TEAM_LEAD,
    sla.TIER_HEAD: roles.RANK_HEAD,
    sla.TIER_ALL_LEVELS: roles.RANK_HEAD,
}
# the transitions that end a ticket's handling: only its tier's owner or above
SETTLING_TRANSITIONS = ("resolve", "close")


def may_settle(*, rank: int, tier: int) -> bool:
    """Only someone at or above a ticket's tier resolves or closes it: an agent
    a tier-1 ticket, a team lead up to tier 2, the head every tier."""
    return rank >= TIER_OWNER_RANKS.get(tier, roles.RANK_HEAD)


def may_edit_playbook(*, actor_id: int, author_id: int | None, is_supervisor: bool) -> bool:
    """A playbook is edited by whoever wrote it, or by a team lead (the
    knowledge base is everyone's to add to, not to overwrite)."""
    return is_supervisor or (author_id is not None and author_id == actor_id)


def tiers_heard_by(rank: int) -> list[int]:
    """The tiers whose alerts (reports up, breaches) this rank's console hears."""
    return [tier for tier, owner in TIER_OWNER_RANKS.items() if owner == rank]


def next_tier(tier: int) -> int | None:
    """The tier a report up goes to; None at the top of the ladder."""
    return tier + 1 if tier < sla.MAX_TIER else None


# --- pictures in chat (issue #13 item 3) ------------------------------------------


def may_see_attachment(viewer: Viewer, *, buyer_id: int | None, merchant_id: int | None, party: str,
                       uploaded_by_id: int, claimed: bool, internal: bool) -> bool:
    """An attachment is seen by whoever sees its message: the ticket's viewers
    (``can_view``: the buyer, staff, the merchant once a party), an internal
    note's by staff only. Before a message claims it, only its uploader and
    staff see it."""
    if not can_view(viewer, buyer_id=buyer_id, merchant_id=merchant_id, party=party):
        return False
    if viewer.is_staff:
        return True
    if not claimed:
        return uploaded_by_id == viewer.user_id
    return not internal
