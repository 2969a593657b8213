from sqlalchemy import func, insert, select

from capkit.service.db import (
    SCHEMA_VERSION,
    conversations,
    init_schema,
    make_engine,
    schema_version,
    seed,
    users,
    utcnow,
)
from capkit.service.security import verify_password


def _count(engine, table):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def _check_seed(engine):
    result = seed(engine, users=20, conversations=50, messages_per_conversation=4, test_accounts=3)
    assert not result.skipped and result.users == 24 and result.messages == 200 and result.model_calls == 100
    assert seed(engine, users=20, conversations=50).skipped  # idempotent
    assert _count(engine, users) == 24
    with engine.connect() as conn:
        stmt = select(users.c.username, users.c.role).where(users.c.username.like("loadtest-%"))
        rows = dict(conn.execute(stmt).all())
        assert rows == {"loadtest-0000": "user", "loadtest-0001": "user", "loadtest-0002": "user",
                        "loadtest-admin": "admin"}
        stored = conn.execute(select(users.c.password_hash).where(users.c.username == "loadtest-0002")).scalar()
        assert verify_password("loadtest-password", stored)
        assert conn.execute(select(schema_version.c.version)).scalar() == SCHEMA_VERSION
    with engine.begin() as conn:  # ids after the seed do not collide (PostgreSQL sequences moved)
        conn.execute(insert(conversations).values(user_id=1, title="new", created_at=utcnow()))
    assert init_schema(engine) == SCHEMA_VERSION


def test_seed_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'db.sqlite'}")
    _check_seed(engine)
    engine.dispose()


def test_seed_postgresql(pg_url):
    engine = make_engine(pg_url)
    _check_seed(engine)
    engine.dispose()


def test_seed_is_deterministic(tmp_path):
    contents = []
    for name in ("a", "b"):
        engine = make_engine(f"sqlite:///{tmp_path / name}.sqlite")
        seed(engine, users=5, conversations=10, messages_per_conversation=2, seed=7)
        with engine.connect() as conn:
            contents.append(conn.execute(select(conversations.c.user_id, conversations.c.title)).all())
        engine.dispose()
    assert contents[0] == contents[1]
