"""Shipments in a region, carrier events for them, incidents with tickets."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.utils import timezone

from accounts import roles
from accounts.tests.factories import UserFactory
from merchants.tests.factories import OrderFactory, ShipmentFactory

_ids = itertools.count(1)


def integration_user():
    return UserFactory(username=f"carrier-feed-{next(_ids)}", role=roles.INTEGRATION)


def shipment_in(region: str, *, buyer=None, merchant=None):
    extra = {k: v for k, v in (("buyer", buyer), ("merchant", merchant)) if v is not None}
    return ShipmentFactory(order=OrderFactory(region=region, **extra))


def event(shipment, kind: str, *, event_id: str | None = None, occurred_at: datetime | None = None, **extra) -> dict:
    return {"event_id": event_id or f"EV{next(_ids):08d}", "tracking_no": shipment.tracking_no,
            "carrier": shipment.carrier, "kind": kind,
            "occurred_at": (occurred_at or timezone.now()).isoformat(), **extra}
