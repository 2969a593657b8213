"""capkit's reference chat + analytics service: the default target of a capacity run.

Nothing happens at import. Build an app with :func:`capkit.service.app.create_app`, run it
with :func:`capkit.service.server.serve`, fill its database with :func:`capkit.service.db.seed`.
"""

__all__: list[str] = []
