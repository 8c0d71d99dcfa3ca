"""``Authorization: Token <key>`` for the API, against ``accounts.ApiToken``.

The header is the one DRF's token auth used, so clients keep it; what changed
is behind it: a key is stored only as its SHA-256, a token expires
(``expires_at``), logout deletes it and a new password deletes all of the
user's. An unknown, revoked or expired key is a 401 (``not_authenticated``,
the detail says which); a request without the header falls through to the
session.
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts.models import ApiToken
from accounts.services import token_digest


class TokenExpired(exceptions.AuthenticationFailed):
    default_detail = "The token has expired; log in again."
    default_code = "token_expired"


class ApiTokenAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: give one key after 'Token'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = ApiToken.objects.select_related("user").filter(digest=token_digest(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if token.is_expired(timezone.now()):
            raise TokenExpired()
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
