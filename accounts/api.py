from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from accounts import roles
from accounts.logins import ip_and_device
from accounts.models import LoginEvent
from accounts.services import record_login
from core.api import error_response


class LoginThrottle(AnonRateThrottle):
    rate = "30/min"


class TokenApi(GenericAPIView):
    """Exchange a username and password for an API token (recorded in the login history)."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [LoginThrottle]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TokenInput"

        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TokenOutput"

        token = serializers.CharField()
        user_id = serializers.IntegerField()
        role = serializers.CharField(allow_null=True)

    serializer_class = OutputSerializer

    @extend_schema(operation_id="auth_token", request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None:
            return error_response(
                code="invalid_credentials", detail="Wrong username or password.", status_code=400
            )
        token, _ = Token.objects.get_or_create(user=user)
        ip, device = ip_and_device(request)
        record_login(user=user, ip=ip, device=device, source=LoginEvent.Source.TOKEN)
        return Response({"token": token.key, "user_id": user.pk, "role": roles.role_of(user)})
