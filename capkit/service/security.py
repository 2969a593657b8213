"""Password hashes (PBKDF2-SHA256) and signed access tokens (PyJWT)."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from functools import lru_cache

import jwt


def hash_password(password: str, *, iterations: int = 1000, salt: bytes | None = None) -> str:
    """Return ``pbkdf2_sha256$ITER$SALT$HASH``; few iterations keep token issue load-testable."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the ``stored`` hash (constant-time compare)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True)
class TokenClaims:
    """What a valid access token says about its holder."""

    sub: str
    uid: int
    roles: tuple[str, ...]
    exp: int

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed or expired (``str`` says which)."""


def issue_token(*, sub: str, uid: int, roles: list[str], secret: str, algorithm: str, expiry_s: int) -> tuple[str, int]:
    """Return ``(token, exp)`` for a signed JWT carrying ``sub``, ``uid`` and ``roles``."""
    now = int(time.time())
    exp = now + int(expiry_s)
    payload = {"sub": sub, "uid": uid, "roles": list(roles), "iat": now, "exp": exp}
    return jwt.encode(payload, secret, algorithm=algorithm), exp


def decode_token(token: str, *, secret: str, algorithm: str) -> TokenClaims:
    """Validate ``token`` (signature, algorithm, expiry, required claims) and return its claims.

    A token that verified once is remembered (:func:`_verified`, at most ``VERIFIED_CACHE``
    tokens, keyed by the token, secret and algorithm): clients send the same token on every
    request, and PyJWT's decode is a third of a validate request's CPU. Expiry is checked on
    every call; tokens that fail are never remembered.
    """
    claims = _verified(token, secret, algorithm)
    if claims.exp <= time.time():  # PyJWT's own rule: expired once ``exp <= now``
        raise InvalidToken("token expired")
    return claims


VERIFIED_CACHE = 4096


@lru_cache(maxsize=VERIFIED_CACHE)
def _verified(token: str, secret: str, algorithm: str) -> TokenClaims:
    try:
        # only the configured algorithm is accepted: `alg: none` and algorithm swaps are refused
        payload = jwt.decode(token, secret, algorithms=[algorithm], options={"require": ["exp", "sub", "uid"]})
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"invalid token: {exc}") from None
    roles = payload.get("roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("invalid token: roles must be a list of strings")
    try:
        uid = int(payload["uid"])
    except (TypeError, ValueError):
        raise InvalidToken("invalid token: uid must be an integer") from None
    return TokenClaims(sub=str(payload["sub"]), uid=uid, roles=tuple(roles), exp=int(payload["exp"]))
