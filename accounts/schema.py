"""The API token in the OpenAPI schema (imported by the URLconf, beside the schema's views:
drf-spectacular's extensions import its whole toolkit, which the app's import and a cold
start need not pay for)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` from `POST /api/v1/auth/token/`; it expires (`expires_at`) and is revoked "
            "by `POST /api/v1/auth/logout/` and by a password change.",
        }
