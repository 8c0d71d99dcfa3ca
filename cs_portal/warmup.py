"""What a worker would otherwise load on its first requests, loaded once in
the gunicorn master before it forks (``cs_portal.gunicorn.when_ready``).

Django and its libraries import and build much lazily: the URLconf and every
view module behind it, DRF's settings classes, the translation catalogues,
the templates, each model's field caches, the channel layer's module. In a
freshly forked worker the first thousand sockets paid for all of it at once
(py-spy on ``bench/chat.py --scenarios reconnect``, 2026-12-02: a quarter of
the workers' time during a reconnect storm was spent importing). Loaded here,
the workers inherit it, and ``gc.freeze`` in ``post_fork`` keeps it out of
the collector.

Two parts, because they serve different moments. What a socket's first
frames need (the session engine, the channel layer, the cache, the models'
field caches, the catalogues) is a few milliseconds and always loaded. What
pages need (every view module behind the URLconf, DRF's settings, the
project's templates: ~0.3 s of one core) is loaded when a deploy starts the
server beside a running one (``deploy/listen_first.py`` says so with
``CS_DEPLOY=1``), where it costs nobody a wait and a template that does not
compile stops the deploy, not a page later. After a cold start every socket
is waiting for the workers: loaded there, it held all of them back (the last
of 1,000 reconnecting sockets back at 3.36-3.37 s with it, 2.82-3.02 s
without; PERFORMANCE.md), and the pages' first requests load it instead.

Nothing here opens a connection: the database pool and Redis are per worker.
"""

from __future__ import annotations

from pathlib import Path


def warm_up(*, pages: bool = True) -> int:
    """Load what the first requests would (with ``pages``, what pages need
    too); returns the templates compiled."""
    from django.apps import apps
    from django.conf import settings
    from django.contrib.auth import get_backends
    from django.utils import translation
    from django.utils.module_loading import import_string
    from importlib import import_module

    for model in apps.get_models():
        model._meta.get_fields()  # the relation tree and field caches

    get_backends()
    import_module(settings.SESSION_ENGINE)
    for layer in getattr(settings, "CHANNEL_LAYERS", {}).values():
        import_string(layer["BACKEND"])  # the module only: the layer connects in the worker
    for cache in settings.CACHES.values():
        import_string(cache["BACKEND"])

    for code, _name in settings.LANGUAGES:  # the catalogues, parsed once
        with translation.override(code):
            translation.gettext("Queue")
    if not pages:
        return 0
    _urls()
    _drf_settings()
    return _templates()


def _urls() -> None:
    from django.urls import get_resolver

    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 - imports every urls module and the views behind them
    resolver._populate()  # the reverse map every {% url %} and redirect reads


def _drf_settings() -> None:
    from rest_framework.settings import api_settings

    for name in ("DEFAULT_RENDERER_CLASSES", "DEFAULT_PARSER_CLASSES", "DEFAULT_AUTHENTICATION_CLASSES",
                 "DEFAULT_PERMISSION_CLASSES", "DEFAULT_THROTTLE_CLASSES", "DEFAULT_CONTENT_NEGOTIATION_CLASS",
                 "DEFAULT_METADATA_CLASS", "DEFAULT_VERSIONING_CLASS", "DEFAULT_PAGINATION_CLASS",
                 "DEFAULT_FILTER_BACKENDS", "EXCEPTION_HANDLER", "DEFAULT_SCHEMA_CLASS"):
        getattr(api_settings, name)


def _templates() -> int:
    """Compile the project's own templates (the cached loader keeps them; the
    libraries' admin and API browser pages are left to their rare first use)."""
    from django.conf import settings
    from django.template import engines

    base = Path(settings.BASE_DIR).resolve()
    compiled = 0
    for engine in engines.all():
        for directory in engine.template_dirs:
            root = Path(directory).resolve()
            if not root.is_relative_to(base) or "site-packages" in root.parts:
                continue
            for path in sorted(root.rglob("*.html")):
                # a template that does not compile stops the deploy here, not a page later
                engine.get_template(path.relative_to(root).as_posix())
                compiled += 1
    return compiled
