"""The project package.

The Celery app (``cs_portal.celery``) is loaded when it is first needed, not
with the package: ``celery -A cs_portal`` finds it there, ``core.tasks.enqueue``
loads it before it queues, and ``cs_portal.celery_app`` still names it. A web
worker that never queues a task never imports Celery, which was a fifth of
the app's import and of a cold start's wait before the first socket is back
(docs/PERFORMANCE.md, 2026-12-06)."""


def __getattr__(name: str):
    if name == "celery_app":
        from cs_portal.celery import app

        return app
    raise AttributeError(f"module 'cs_portal' has no attribute {name!r}")


__all__ = ["celery_app"]
