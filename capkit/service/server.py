"""Run the service under uvicorn: ``serve(settings, host, port, workers)``."""

from __future__ import annotations

import json
import os
import socket

from pydantic import SecretStr

from capkit.config import Settings, get_settings
from capkit.errors import ServiceError


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`ServiceError` (one line) when ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise ServiceError(f"port {port} on {host} is in use; choose another with --port") from None
            raise ServiceError(f"cannot bind {host}:{port}: {exc.strerror}; choose another --host/--port") from None


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The ``CAPKIT_*`` environment that reproduces ``settings`` in a worker process."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):  # str() would hand the worker the mask "**********"
            value = value.get_secret_value()
        env[f"CAPKIT_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return env


def app_from_env():
    """uvicorn factory (``capkit.service.server:app_from_env``): the app for the environment's settings."""
    from capkit.service.app import create_app

    return create_app(get_settings())


def prepare_database(settings: Settings) -> None:
    """Create the schema and, with ``seed_on_start``, seed it (idempotent) before workers start."""
    from capkit.service.db import init_schema, make_engine, seed

    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0, pool_timeout=settings.db_pool_timeout_s,
                         pgbouncer=settings.db_pgbouncer)
    try:
        init_schema(engine)
        if settings.seed_on_start:
            seed(engine, users=settings.seed_users, conversations=settings.seed_conversations,
                 messages_per_conversation=settings.seed_messages_per_conversation,
                 test_accounts=settings.seed_test_accounts, test_account_prefix=settings.test_account_prefix,
                 test_account_password=settings.test_account_password,
                 hash_iterations=settings.password_hash_iterations)
    except Exception as exc:  # noqa: BLE001 - a database we cannot prepare is a user-facing problem
        from capkit.errors import redact_url

        raise ServiceError(f"database {redact_url(settings.database_url)} cannot be prepared: "
                           f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        engine.dispose()


def auth_lines(settings: Settings, url: str) -> list[str]:
    """What ``capkit serve`` prints on start-up: where it listens and how a client authenticates to ``/v1``."""
    head = f"capkit serve: reference service at {url} (Ctrl-C stops it)"
    if settings.openai_auth == "none":
        return [head, f"/v1 (OpenAI-compatible): no token needed (CAPKIT_OPENAI_AUTH=none); callers without one are "
                      f"rate limited per address ({settings.rate_limit_chat}, CAPKIT_RATE_LIMIT_CHAT)"]
    if settings.env == "production" or settings.seed_test_accounts == 0:  # no load-test account to default to
        cmd = f"capkit token --target {url} --username NAME --password PASSWORD"
    else:
        cmd = f"capkit token --target {url}"
    return [head, f"/v1 (OpenAI-compatible) wants a bearer token: `{cmd}` prints one (give it to `capkit run` "
                  f"with --api-key-env VAR); CAPKIT_OPENAI_AUTH=none serves /v1 without one (local use)"]


def serve(settings: Settings, host: str, port: int, workers: int = 1, log_level: str = "warning",
          say=print) -> None:
    """Serve the reference service on ``host:port`` until interrupted.

    Parameters
    ----------
    settings : Settings
        The service's settings; with ``workers > 1`` they reach the workers as ``CAPKIT_*``
        environment variables.
    host, port : str, int
        Where to listen. A port in use raises :class:`ServiceError` before anything starts.
    workers : int
        uvicorn worker processes.
    log_level : str
        uvicorn's log level.
    say : callable
        Receives the start-up lines (:func:`auth_lines`).
    """
    import uvicorn

    if workers < 1:
        raise ServiceError(f"workers must be ≥ 1 (got {workers})")
    check_port_free(host, port)
    prepare_database(settings)
    for line in auth_lines(settings, f"http://{'[' + host + ']' if ':' in host else host}:{port}"):
        say(line)
    common = dict(host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
    if workers == 1:
        from capkit.service.app import create_app

        uvicorn.run(create_app(settings), **common)
    else:
        os.environ.update(settings_to_env(settings))
        uvicorn.run("capkit.service.server:app_from_env", factory=True, workers=workers, **common)
