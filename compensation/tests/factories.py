from merchants.tests.factories import paid_order
from tickets.tests.factories import ticket_in_state


def remedy_ticket(*, buyer, agent, merchant, amount_fen: int = 2_990, released: bool = False, category="not_received",
                  state="assigned"):
    """An assigned ticket on a paid, shipped order (in escrow unless ``released``)."""
    order = paid_order(merchant=merchant, buyer=buyer, amount_fen=amount_fen, released=released)
    return ticket_in_state(state, buyer=buyer, agent=agent, order=order, category=category)


def new_key() -> str:
    """A fresh Idempotency-Key, as a client makes one per money action."""
    import uuid

    return uuid.uuid4().hex
