"""``Authorization: Token <key>`` for the API, against ``accounts.ApiToken``.

The header is the one DRF's token auth used, so clients keep it; what changed
is behind it: a key is stored only as its SHA-256, a token expires
(``expires_at``), logout deletes it and a new password deletes all of the
user's. An unknown, revoked or expired key is a 401 (``not_authenticated``,
the detail says which); a request without the header falls through to the
session.
"""

from __future__ import annotations

import functools

from django.db import connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts import roles
from accounts.models import ApiToken, User
from accounts.services import token_digest
from core.rows import Columns, cache_related, column, prepared_cursor, split, table


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
        token = token_with_user(token_digest(key))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if token.is_expired(timezone.now()):
            raise TokenExpired()
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


_TOKEN, _USER = Columns(ApiToken, "t"), Columns(User, "u")


def token_with_user(digest: str) -> ApiToken | None:
    """The token of ``digest`` with its user, as
    ``ApiToken.objects.select_related("user")`` builds them, and the user's
    role groups (held on the user: the request's permission checks read no
    cache), in one statement written once per process: every API request
    asks, and the ORM spent more CPU building the query than PostgreSQL spent
    answering it."""
    with prepared_cursor() as cursor:
        cursor.execute(_token_sql(connection.vendor), [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    token, user, groups = split(row, _TOKEN, _USER)
    cache_related(token, "user", user)
    roles.remember_role_group_names(user, groups)
    return token


@functools.cache
def _token_sql(vendor: str) -> str:
    return (f"SELECT {_TOKEN.sql()}, {_USER.sql()}, {roles.role_groups_column('u', vendor)} FROM {table(ApiToken)} t "
            f"JOIN {table(User)} u ON {column(User, 'id', 'u')} = {column(ApiToken, 'user', 't')} "
            f"WHERE {column(ApiToken, 'digest', 't')} = %s")
