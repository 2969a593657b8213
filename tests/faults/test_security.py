"""Security: roles, rate limits that headers cannot dodge, bound parameters, secrets kept out of reports."""

import subprocess

from sqlalchemy import create_engine, text

from capkit.store import open_store
from capkit.synthetic import write_synthetic_run
from tests.conftest import run_cli
from tests.service.conftest import login, make_client, sqlite_url  # noqa: F401 (fixtures)


def test_admin_only_endpoint_refuses_users(make_client):  # noqa: F811
    client = make_client()
    user = login(client)
    admin = login(client, "loadtest-admin")
    assert client.get("/api/analytics/models", headers=user).status_code == 403
    assert client.get("/api/analytics/models", headers=admin).status_code == 200


def test_rate_limit_cannot_be_dodged_by_headers_or_new_tokens(make_client):  # noqa: F811
    client = make_client(rate_limit_chat="3/minute")
    statuses = []
    for i in range(6):
        headers = login(client)  # a fresh token each time: same user, same limit
        headers.update({"X-Forwarded-For": f"10.0.0.{i}", "X-Real-IP": f"10.0.1.{i}", "User-Agent": f"ua-{i}",
                        "X-Client-Id": str(i)})
        statuses.append(client.post("/api/chat/message", json={"message": f"hi {i}"}, headers=headers).status_code)
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_injection_strings_are_harmless(make_client, sqlite_url):  # noqa: F811
    client = make_client()
    headers = login(client)
    evil = "'); DROP TABLE messages; --"
    for path in (f"/api/analytics/trends?days={evil}", f"/api/analytics/users?limit={evil}",
                 "/api/analytics/trends?days=1%20OR%201=1", f"/api/chat/history/{evil}"):
        assert client.get(path, headers=headers).status_code in (404, 422), path
    reply = client.post("/api/chat/message", json={"message": evil}, headers=headers)
    assert reply.status_code == 200
    cid = reply.json()["conversation_id"]
    history = client.get(f"/api/chat/history/{cid}", headers=headers).json()
    assert any(m["content"] == evil for m in history["messages"])  # stored verbatim, through bound parameters
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() > 0
    engine.dispose()


def test_password_in_store_url_never_reaches_the_report_or_the_terminal(pg_url, tmp_path):
    secret = "s3cret-Pa55word"
    # trust auth accepts any password: the URL carries one, as a team's real URL would
    url = pg_url.replace("postgres@", f"postgres:{secret}@")
    write_synthetic_run(open_store(url), "secret-run", seed=3)
    env = {"CAPKIT_STORE_URL": url, "CAPKIT_REPORTS_DIR": str(tmp_path / "reports")}
    proc = run_cli("report", "secret-run", env=env)
    assert proc.returncode == 0, proc.stderr
    bad = run_cli("report", "no-such-run", env=env)
    assert bad.returncode != 0
    found = subprocess.run(["grep", "-rl", secret, str(tmp_path / "reports")], capture_output=True, text=True)
    assert found.stdout == ""  # grep finds the password in no published file
    assert (tmp_path / "reports" / "secret-run" / "index.html").exists()
    for out in (proc.stdout, proc.stderr, bad.stdout, bad.stderr):
        assert secret not in out
