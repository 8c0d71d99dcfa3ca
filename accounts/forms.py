"""The browser login form: Django's, with the doors' guards (``core.doors``:
the blacklist) asked once the password is right."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.logins import ip_and_device
from core import doors
from core.errors import DomainError


class LoginForm(AuthenticationForm):
    refusal = ""  # a door's refusal, shown instead of "wrong username or password"

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        ip, device = ip_and_device(self.request) if self.request is not None else (None, "")
        try:
            doors.check(door=doors.LOGIN, user=user, ip=ip, device=device)
        except DomainError as refused:
            self.refusal = str(refused.detail)
            raise forms.ValidationError(str(refused.detail), code=refused.code) from None
