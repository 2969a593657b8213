"""The service's database: tables, engine, versioned schema and the seed data.

SQLite by default, PostgreSQL by URL (``postgresql+psycopg://``). Nothing is created at import.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    exc,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.pool import StaticPool

from capkit.service.security import hash_password

SCHEMA_VERSION = 1

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(120), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(20), nullable=False, default="user"),
    Column("created_at", DateTime, nullable=False),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", Integer, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("role", String(20), nullable=False),  # "user" or "assistant"
    Column("content", Text, nullable=False),
    Column("tokens", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False, index=True),
)

model_calls = Table(
    "model_calls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", Integer, ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True),
    Column("user_id", Integer, nullable=True, index=True),
    Column("model", String(120), nullable=False, index=True),
    Column("tokens", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("cached", Boolean, nullable=False, default=False),
    Column("fallback", Boolean, nullable=False, default=False),
    Column("ok", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False, index=True),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime, nullable=False),
)


# `seed` takes parameters named like the tables; these aliases keep the tables reachable there
_USERS, _CONVERSATIONS = users, conversations


def utcnow() -> dt.datetime:
    """Naive UTC now (the tables store naive UTC on both SQLite and PostgreSQL)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10, pool_timeout: float = 5.0,
                pgbouncer: bool = False) -> Engine:
    """Create an engine for ``url`` with the given pool limits (SQLite gets WAL and a busy timeout).

    ``pgbouncer``: ``url`` goes through PgBouncer in transaction pooling, so psycopg must not
    prepare statements (a prepared statement lives on one server connection, and the next
    transaction may get another one; PgBouncer < 1.21 cannot track them).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path in ("", ":memory:"):
            return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # concurrent readers, one writer waiting politely
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    connect_args = {"connect_timeout": 3} if url.startswith("postgresql") else {}
    if pgbouncer and url.startswith("postgresql"):
        connect_args["prepare_threshold"] = None
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def init_schema(engine: Engine) -> int:
    """Create the tables if missing and record the schema version; returns the version.

    Safe to call from several processes at once (a lost creation race is ignored).
    """
    try:
        metadata.create_all(engine, checkfirst=True)
    except (exc.IntegrityError, exc.ProgrammingError, exc.OperationalError):
        metadata.create_all(engine, checkfirst=True)  # another process won the race
    with engine.begin() as conn:
        current = conn.execute(select(func.max(schema_version.c.version))).scalar()
        if current is None:
            try:
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION, applied_at=utcnow()))
            except exc.IntegrityError:
                pass
            current = SCHEMA_VERSION
    return int(current)


@dataclass(frozen=True)
class SeedResult:
    """What :func:`seed` did: ``skipped`` when the database already held users."""

    skipped: bool
    users: int
    conversations: int
    messages: int
    model_calls: int


_WORDS = (
    "capacity latency throughput cache query index replica shard queue token model stream user session "
    "request response budget forecast peak load test metric alert threshold scale node cluster pool "
    "connection timeout retry fallback circuit breaker window rate limit burst steady state growth "
    "weekly daily report chart trend summary admin dashboard storage memory cpu core thread process "
    "the a an of to in for on with and or but is are was be can will should could would please thanks "
    "how what why when where which who explain show compare estimate plan tune measure check help"
).split()
_MODELS = ("capkit-builtin", "tinyllama", "llama3")


def seed(
    engine: Engine,
    *,
    users: int = 200,
    conversations: int = 2000,
    messages_per_conversation: int = 10,
    seed: int = 0,
    test_accounts: int = 50,
    test_account_prefix: str = "loadtest-",
    test_account_password: str = "loadtest-password",
    days: int = 30,
    hash_iterations: int = 1000,
) -> SeedResult:
    """Fill an empty database with deterministic users, conversations, messages and model calls.

    Test accounts are ``{prefix}0000``… (role ``user``) plus ``{prefix}admin`` (role ``admin``),
    all with ``test_account_password``. Skipped (idempotent) when the users table is not empty.
    """
    init_schema(engine)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(_USERS)).scalar():
            return SeedResult(True, 0, 0, 0, 0)
    rng = random.Random(seed)
    now = utcnow().replace(microsecond=0)
    start = now - dt.timedelta(days=days)
    span = int((now - start).total_seconds())
    test_hash = hash_password(test_account_password, iterations=hash_iterations, salt=b"capkit-test-acct")
    other_hash = hash_password(f"seed-{seed}", iterations=hash_iterations, salt=b"capkit-seed-user")

    user_rows = [
        {"id": i + 1, "username": f"user{i:05d}", "password_hash": other_hash, "role": "user", "created_at": start}
        for i in range(users)
    ]
    for i in range(test_accounts):
        user_rows.append({"id": len(user_rows) + 1, "username": f"{test_account_prefix}{i:04d}",
                          "password_hash": test_hash, "role": "user", "created_at": start})
    user_rows.append({"id": len(user_rows) + 1, "username": f"{test_account_prefix}admin",
                      "password_hash": test_hash, "role": "admin", "created_at": start})
    chat_user_ids = [r["id"] for r in user_rows if r["role"] == "user"]

    conv_rows, msg_rows, call_rows = [], [], []
    for c in range(conversations):
        uid = rng.choice(chat_user_ids)
        created = start + dt.timedelta(seconds=rng.randrange(span))
        title = " ".join(rng.choices(_WORDS, k=4))
        conv_rows.append({"id": c + 1, "user_id": uid, "title": title, "created_at": created})
        t = created
        for m in range(messages_per_conversation):
            t = min(t + dt.timedelta(seconds=rng.randrange(5, 600)), now)
            role = "user" if m % 2 == 0 else "assistant"
            n = rng.randrange(6, 48)
            msg_rows.append({"id": len(msg_rows) + 1, "conversation_id": c + 1, "user_id": uid, "role": role,
                             "content": " ".join(rng.choices(_WORDS, k=n)), "tokens": n, "created_at": t})
            if role == "assistant":
                model = rng.choices(_MODELS, weights=(8, 3, 1))[0]
                call_rows.append({"id": len(call_rows) + 1, "conversation_id": c + 1, "user_id": uid, "model": model,
                                  "tokens": n, "latency_ms": round(rng.lognormvariate(5.0, 0.5), 2),
                                  "cached": rng.random() < 0.1, "fallback": rng.random() < 0.03,
                                  "ok": rng.random() > 0.01, "created_at": t})

    with engine.begin() as conn:
        for table, rows in ((_USERS, user_rows), (_CONVERSATIONS, conv_rows),
                            (messages, msg_rows), (model_calls, call_rows)):
            for i in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[i : i + 5000])
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for name in ("users", "conversations", "messages", "model_calls"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                  f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"))
    return SeedResult(False, len(user_rows), len(conv_rows), len(msg_rows), len(call_rows))
