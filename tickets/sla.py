"""The emergency plan's grades: deadline and owning tier per grade."""

from __future__ import annotations

from datetime import timedelta

from django.utils.translation import gettext_lazy as _

GRADE_GENERAL = "3"
GRADE_SERIOUS = "2"
GRADE_SEVERE = "1"
GRADE_SPECIAL = "special"

GRADE_CHOICES = [
    (GRADE_GENERAL, _("Grade 3 · general")),
    (GRADE_SERIOUS, _("Grade 2 · serious")),
    (GRADE_SEVERE, _("Grade 1 · severe")),
    (GRADE_SPECIAL, _("Special grade")),
]

# grade 3: complaint, delay, lost or short parcel, attitude → 30 min, an agent
# grade 2: regional backlog / losses / stuck parcels → 8 h, a team lead
# grade 1: theft, seizure, traffic accident, prohibited items → 12 h, the head
# special: disaster, fire, injury, public safety → 24 h, all levels
GRADE_DEADLINES: dict[str, timedelta] = {
    GRADE_GENERAL: timedelta(minutes=30),
    GRADE_SERIOUS: timedelta(hours=8),
    GRADE_SEVERE: timedelta(hours=12),
    GRADE_SPECIAL: timedelta(hours=24),
}

TIER_AGENT = 1
TIER_TEAM_LEAD = 2
TIER_HEAD = 3
TIER_ALL_LEVELS = 4
MAX_TIER = TIER_ALL_LEVELS

TIER_CHOICES = [
    (TIER_AGENT, _("Agent")),
    (TIER_TEAM_LEAD, _("Team lead")),
    (TIER_HEAD, _("Head")),
    (TIER_ALL_LEVELS, _("All levels")),
]

GRADE_TIERS: dict[str, int] = {
    GRADE_GENERAL: TIER_AGENT,
    GRADE_SERIOUS: TIER_TEAM_LEAD,
    GRADE_SEVERE: TIER_HEAD,
    GRADE_SPECIAL: TIER_ALL_LEVELS,
}

# most severe first, for sorting and display
GRADE_SEVERITY = {GRADE_SPECIAL: 0, GRADE_SEVERE: 1, GRADE_SERIOUS: 2, GRADE_GENERAL: 3}


def deadline_for(grade: str) -> timedelta:
    return GRADE_DEADLINES[grade]
