"""FastAPI dependencies as ``Annotated`` aliases: the app state, the current user, admin, rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from capkit.config import Settings
from capkit.service.security import InvalidToken, TokenClaims, decode_token
from capkit.service.state import ServiceState


# Dependencies are ``async def`` although they do not await: FastAPI runs a plain ``def``
# dependency in a worker thread, and two thread hops per request cost more than the handler
# (measured: GET /api/auth/validate went from 858 to 1,680 req/s per core).
async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def claims_from_token(state: ServiceState, token: str | None) -> TokenClaims:
    """Decode ``token`` or raise 401 naming what is wrong."""
    if not token:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        return decode_token(token, secret=state.settings.jwt_secret, algorithm=state.settings.jwt_algorithm)
    except InvalidToken as err:
        raise HTTPException(401, str(err), headers={"WWW-Authenticate": "Bearer"}) from None


class BearerClaims(HTTPBearer):
    """The ``Authorization: Bearer`` scheme (documented in the OpenAPI spec as ``HTTPBearer``)
    resolved to the token's claims in one dependency: FastAPI's per-dependency cost is most of
    a validate request once the token check is cached, so the state and the header are read
    here rather than through two more dependencies."""

    def __init__(self) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer")

    async def __call__(self, request: Request) -> TokenClaims:  # type: ignore[override]
        return claims_from_token(request.app.state.service, bearer_token(request.scope["headers"]))


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None;
    read straight from the ASGI headers, as HTTPBearer would but without building its models."""
    value = next((v for k, v in headers if k == b"authorization"), None)
    scheme, token = get_authorization_scheme_param(value.decode("latin-1") if value is not None else None)
    return token if scheme.lower() == "bearer" and token else None


current_user = BearerClaims()
CurrentUser = Annotated[TokenClaims, Depends(current_user)]


async def admin_user(user: CurrentUser) -> TokenClaims:
    if not user.is_admin:
        raise HTTPException(403, "this endpoint needs the admin role")
    return user


AdminUser = Annotated[TokenClaims, Depends(admin_user)]


async def check_chat_limit(state: ServiceState, user: TokenClaims) -> None:
    """Raise 429 with ``Retry-After`` when ``user`` is over the chat rate limit."""
    await check_limit(state, "chat", user.sub, who="this user")


async def check_limit(state: ServiceState, scope: str, key: str, *, who: str) -> None:
    """Count one request of ``key`` in ``scope``; raise 429 with ``Retry-After`` when over the limit.

    Parameters
    ----------
    state : ServiceState
        The app's state (its limiter and metrics).
    scope, key : str
        The limit's namespace and who is counted in it (a username, a client address).
    who : str
        How the 429 message names ``key``.
    """
    wait = await state.limiter.hit(scope, key)
    if wait is not None:
        state.metrics.rate_limited.labels(scope).inc()
        raise HTTPException(429, f"rate limit {state.limiter.limit} exceeded for {who}; retry later",
                            headers={"Retry-After": str(int(wait))})


async def chat_user(state: StateDep, user: CurrentUser) -> TokenClaims:
    await check_chat_limit(state, user)
    return user


ChatUser = Annotated[TokenClaims, Depends(chat_user)]
