"""Create a PostgreSQL database named by a URL when it is missing (for the service or the store)."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from capkit.errors import ConfigError, redact_url


def create_database(url: str) -> bool:
    """Create the database of ``url`` if it is PostgreSQL and absent; return True if created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return False
    name = parsed.database
    if not name or not name.replace("_", "").isalnum():
        raise ConfigError(f"database name {name!r} in {redact_url(url)} must be letters, digits and _")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                return False
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            return True
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot create database at {redact_url(url)}: "
                          f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}") from None
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database of ``url`` (tests clean up with this)."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    finally:
        admin.dispose()
