"""``/ws/merchant/``: the merchant portal's live notices (a ticket needs the
merchant, the merchant is invited into a chat, a resend task arrives)."""

from __future__ import annotations


from accounts import roles
from core.consumers import FORBIDDEN, NOT_AUTHENTICATED, LiveConsumer, in_pool
from core.ws_auth import resolve_user
from merchants.selectors import merchant_id_for
from merchants.services import merchant_group


class MerchantConsumer(LiveConsumer):
    """For merchant staff only, and only their own merchant's group: the
    group name comes from the session's user, never from the client."""

    MAX_FRAME = 1024

    async def connect(self) -> None:
        user, merchant_id = await in_pool(_merchant_of)(self.scope)
        if not user.is_authenticated:
            await self.close(code=NOT_AUTHENTICATED)
            return
        if merchant_id is None:
            await self.close(code=FORBIDDEN)
            return
        await self.join(merchant_group(merchant_id))
        await self.accept()


def _merchant_of(scope):
    """The session's user and, for merchant staff, their merchant (one pool trip)."""
    user = resolve_user(scope)
    if not (user.is_authenticated and roles.is_merchant_staff(user)):
        return user, None
    return user, merchant_id_for(user=user)
