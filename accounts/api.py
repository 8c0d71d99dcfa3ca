from django.contrib.auth import authenticate, logout
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from accounts import lockouts, roles
from accounts.logins import ip_and_device
from accounts.models import ApiToken
from accounts.services import lift_lockout, log_in_for_token, revoke_api_token
from core import doors
from core.api import Input, error_response

class LoginThrottle(AnonRateThrottle):
    """A cap on token exchanges per client address (successful ones too);
    the address is the real client (``NUM_PROXIES``), never a header the
    client writes. Failed passwords are counted by the lockout (axes)."""

    scope = "login"
    rate = "30/min"


class TokenApi(GenericAPIView):
    """Exchange a username and password for a new API token (recorded in the
    login history). Each login gets its own key, valid until ``expires_at``
    (null: no expiry); too many failures lock the account and, separately,
    the client address (429 ``locked_out``)."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [LoginThrottle]

    class InputSerializer(Input):
        class Meta:
            ref_name = "TokenInput"

        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TokenOutput"

        token = serializers.CharField()
        expires_at = serializers.DateTimeField(allow_null=True)
        user_id = serializers.IntegerField()
        role = serializers.CharField(allow_null=True)

    serializer_class = OutputSerializer

    @extend_schema(
        operation_id="auth_token", request=InputSerializer,
        responses={200: OutputSerializer,
                   400: OpenApiResponse(description="invalid input or `invalid_credentials`"),
                   403: OpenApiResponse(description="`blacklisted`: the account, the client's address or its "
                                                    "device is on the blacklist (a buyer reads \"system busy\")"),
                   429: OpenApiResponse(description="`locked_out` (too many failed logins for the account or "
                                                           "from the address) or `throttled`")},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None:
            # axes marks the request when the account or the address is (now) locked out
            if getattr(request, "axes_locked_out", False):
                response = error_response(code=lockouts.CODE, detail=lockouts.locked_out_detail(), status_code=429)
                response["Retry-After"] = lockouts.retry_after_seconds()
                return response
            return error_response(
                code="invalid_credentials", detail="Wrong username or password.", status_code=400
            )
        ip, device = ip_and_device(request)
        # the doors' guards (the blacklist): 403 blacklisted, a buyer told "system busy"
        doors.check(door=doors.LOGIN, user=user, ip=ip, device=device)
        issued = log_in_for_token(user=user, ip=ip, device=device)
        return Response(self.OutputSerializer({"token": issued.key, "expires_at": issued.expires_at,
                                               "user_id": user.pk, "role": roles.role_of(user)}).data)


class LogoutApi(APIView):
    """Revoke the token this request came with (the user's other tokens stay);
    a browser session calling it is logged out instead."""

    @extend_schema(operation_id="auth_logout", request=None,
                   responses={204: OpenApiResponse(description="the token is revoked"),
                              401: OpenApiResponse(description="no valid token or session")})
    def post(self, request):
        if isinstance(request.auth, ApiToken):
            revoke_api_token(token=request.auth)
        else:
            logout(request._request)
        return Response(status=204)


class LockoutResetApi(APIView):
    """Lift a login lockout (supervisors): the failures of an account, of a
    client address, or of either when both are given; audited."""

    class InputSerializer(Input):
        class Meta:
            ref_name = "LockoutResetInput"

        username = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
        ip = serializers.IPAddressField(required=False, allow_null=True, default=None)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "LockoutResetOutput"

        username = serializers.CharField()
        ip = serializers.IPAddressField(allow_null=True)
        cleared = serializers.IntegerField(help_text="failure records cleared")
        at = serializers.DateTimeField()

    @extend_schema(operation_id="auth_lockouts_reset", request=InputSerializer,
                   responses={200: OutputSerializer,
                              400: OpenApiResponse(description="neither a username nor an address, or a bad one"),
                              403: OpenApiResponse(description="not a supervisor")})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = lift_lockout(actor=request.user, **data.validated_data)
        return Response(self.OutputSerializer(release).data)
