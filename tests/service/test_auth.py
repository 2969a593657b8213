import base64
import json
import time

import jwt
import pytest

from capkit.config import DEV_JWT_SECRET
from capkit.service.deps import bearer_token
from capkit.service.security import InvalidToken, decode_token, hash_password, issue_token, verify_password

from .conftest import PASSWORD, login


def _token(**kw):
    args = dict(sub="loadtest-0000", uid=1, roles=["user"], secret=DEV_JWT_SECRET, algorithm="HS256", expiry_s=60)
    args.update(kw)
    return issue_token(**args)[0]


def test_token_issue_and_validate(client):
    r = client.post("/api/auth/token", json={"username": "loadtest-0001", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["roles"] == ["user"] and body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], DEV_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "loadtest-0001" and claims["exp"] > time.time()
    v = client.get("/api/auth/validate", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert v.status_code == 200 and v.json()["sub"] == "loadtest-0001" and v.json()["roles"] == ["user"]
    assert v.headers["content-type"] == "application/json" and v.json()["exp"] == claims["exp"]


def test_admin_role(client):
    r = client.post("/api/auth/token", json={"username": "loadtest-admin", "password": PASSWORD})
    assert r.json()["roles"] == ["user", "admin"]
    user = login(client)
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert client.get("/api/analytics/models", headers=user).status_code == 403
    assert client.get("/api/analytics/models", headers=admin).status_code == 200


def test_bad_credentials(client):
    assert client.post("/api/auth/token", json={"username": "loadtest-0001", "password": "nope"}).status_code == 401
    assert client.post("/api/auth/token", json={"username": "nobody", "password": PASSWORD}).status_code == 401
    assert client.post("/api/auth/token", json={"username": 5}).status_code == 422


def test_validate_refuses_missing_expired_forged_and_alg_none(client):
    assert client.get("/api/auth/validate").status_code == 401
    expired = _token(expiry_s=1)
    time.sleep(1.1)  # PyJWT compares whole seconds
    r = client.get("/api/auth/validate", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    forged = _token(secret="another-secret-of-at-least-32-bytes!!")
    assert client.get("/api/auth/validate", headers={"Authorization": f"Bearer {forged}"}).status_code == 401

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': 'x', 'uid': 1, 'roles': ['admin'], 'exp': 2**31})}."
    r = client.get("/api/auth/validate", headers={"Authorization": f"Bearer {unsigned}"})
    assert r.status_code == 401
    assert client.get("/api/auth/validate", headers={"Authorization": "Bearer not.a.jwt"}).status_code == 401


def test_production_refuses_test_accounts(make_client):
    client = make_client(env="production", jwt_secret="a-real-production-secret-0123456789abcdef")
    r = client.post("/api/auth/token", json={"username": "loadtest-0000", "password": PASSWORD})
    assert r.status_code == 403 and "CAPKIT_ENV=production" in r.json()["detail"]


def test_password_hash_roundtrip():
    stored = hash_password("s3cret", iterations=10)
    assert verify_password("s3cret", stored)
    assert not verify_password("S3cret", stored)
    assert not verify_password("s3cret", "garbage")


def test_remembered_token_still_expires(client):
    """A token validated once is remembered; expiry is still checked on every request."""
    token = _token(expiry_s=2)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/auth/validate", headers=headers).status_code == 200
    assert client.get("/api/auth/validate", headers=headers).status_code == 200  # from the cache
    time.sleep(2.1)
    r = client.get("/api/auth/validate", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "token expired"


def test_verified_cache_keys_on_secret_and_keeps_no_failures():
    token = _token()
    claims = decode_token(token, secret=DEV_JWT_SECRET, algorithm="HS256")
    assert claims.sub == "loadtest-0000"
    other = "another-secret-of-at-least-32-bytes!!"
    for _ in range(2):  # refused both times: a failure is never remembered
        with pytest.raises(InvalidToken, match="invalid token"):
            decode_token(token, secret=other, algorithm="HS256")
    with pytest.raises(InvalidToken):  # the algorithm is part of the key too
        decode_token(token, secret=DEV_JWT_SECRET, algorithm="HS512")


@pytest.mark.parametrize(("headers", "expected"), [
    ([(b"authorization", b"Bearer abc.def.ghi")], "abc.def.ghi"),
    ([(b"host", b"x"), (b"authorization", b"bearer   abc ")], "abc"),
    ([(b"authorization", b"Basic dXNlcjpwdw==")], None),
    ([(b"authorization", b"Bearer")], None),
    ([(b"authorization", b"Bearer ")], None),
    ([(b"host", b"x")], None),
    ([], None),
])
def test_bearer_token_parsing(headers, expected):
    assert bearer_token(headers) == expected
