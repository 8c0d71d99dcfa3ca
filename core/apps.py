from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares and nothing domain: errors and the API error
    handler, money formatting, publish-after-commit, input parsing."""

    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import urls

        urls.register()
