"""``/api/auth``: issue and validate access tokens for seeded users and load-test accounts."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select

from capkit.service.db import users
from capkit.service.deps import CurrentUser, StateDep
from capkit.service.responses import model_response
from capkit.service.security import issue_token, verify_password

router = APIRouter(prefix="/api/auth", tags=["auth"])


class TokenRequest(BaseModel):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    roles: list[str]


class ValidateResponse(BaseModel):
    sub: str
    roles: list[str]
    exp: int


def _find_user(engine: Engine, username: str):
    with engine.connect() as conn:
        return conn.execute(select(users.c.id, users.c.password_hash, users.c.role)
                            .where(users.c.username == username)).first()


@router.post("/token", response_model=TokenResponse)
async def token(body: TokenRequest, state: StateDep) -> TokenResponse:
    settings = state.settings
    if settings.env == "production" and body.username.startswith(settings.test_account_prefix):
        raise HTTPException(403, "test accounts are refused when CAPKIT_ENV=production")
    row = await state.run_db(_find_user, body.username)
    if row is None or not verify_password(body.password, row.password_hash):
        raise HTTPException(401, "unknown username or wrong password", headers={"WWW-Authenticate": "Bearer"})
    roles = ["user", "admin"] if row.role == "admin" else ["user"]
    access, _exp = issue_token(sub=body.username, uid=row.id, roles=roles, secret=settings.jwt_secret,
                               algorithm=settings.jwt_algorithm, expiry_s=settings.jwt_expiry_s)
    return TokenResponse(access_token=access, expires_in=settings.jwt_expiry_s, roles=roles)


@router.get("/validate", response_model=ValidateResponse)
async def validate(user: CurrentUser) -> Response:
    return model_response(ValidateResponse(sub=user.sub, roles=list(user.roles), exp=user.exp))
