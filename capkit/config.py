"""Settings, read from the environment (prefix ``CAPKIT_``) only when asked for.

Only the CLI, the service's app factory and ``ops/`` call :func:`get_settings`; library
functions take explicit arguments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "capkit-dev-secret-change-me-0123456789"


class Settings(BaseSettings):
    """Every setting of capkit and of its reference service."""

    model_config = SettingsConfigDict(env_prefix="CAPKIT_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"

    # results store and raw run files
    store_url: str = "sqlite:///runs/capkit.sqlite"
    runs_dir: str = "runs"
    reports_dir: str = "reports"

    # where the cgroup filesystem is (pod-like limits of the service under test: --cpu-limit, --memory-limit-mib)
    cgroup_root: str = "/sys/fs/cgroup"
    # the load balancer of a --replicas fleet (a name on PATH or a path)
    haproxy_bin: str = "haproxy"
    # a fleet's shared model backend (--shared-model): its concurrent generations and its rate
    # limit for all replicas together (the seed's "external API rate limits")
    shared_model_slots: int = Field(8, ge=1)
    shared_model_rate_limit: str = "6000/minute"

    # reference service: database, cache, auth
    database_url: str = "sqlite:///runs/service.sqlite"
    db_pool_size: int = Field(5, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout_s: float = Field(5.0, gt=0)
    # database_url goes through PgBouncer (transaction pooling): psycopg prepares no statements
    db_pgbouncer: bool = False
    # PostgreSQL itself, for the collectors, when database_url points at a pooler in front of it
    db_monitor_url: str | None = None
    redis_url: str | None = None
    cache_ttl_s: float = Field(30.0, ge=0)
    cache_max_entries: int = Field(10_000, ge=1)
    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithm: str = "HS256"
    jwt_expiry_s: int = Field(3600, gt=0)
    test_account_prefix: str = "loadtest-"
    test_account_password: str = "loadtest-password"
    rate_limit_chat: str = "100/minute"

    # built-in model: real CPU work per token, optional delay between tokens
    model_tokens: int = Field(48, ge=1, le=4096)
    model_cpu_ms_per_token: float = Field(0.25, ge=0)
    model_token_delay_ms: float = Field(4.0, ge=0)
    max_message_chars: int = Field(4000, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)

    # circuit breaker guarding the database
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_s: float = Field(5.0, gt=0)

    # reference service: model manager (backends in priority order, comma separated)
    model_backends: str = "builtin"
    model_name: str = "capkit-builtin"
    model_max_concurrent: int = Field(8, ge=1)
    model_queue_size: int = Field(256, ge=0)
    model_queue_timeout_s: float = Field(10.0, gt=0)
    model_first_token_timeout_s: float = Field(30.0, gt=0)
    model_unhealthy_s: float = Field(5.0, ge=0)
    ollama_url: str = "http://127.0.0.1:11434"
    ollama_model: str = "tinyllama"
    # any OpenAI-compatible server (vLLM, llama.cpp, TGI, SGLang, Ollama's /v1, another capkit service)
    openai_url: str = "http://127.0.0.1:8001"
    openai_model: str = Field("default", description="the model name the upstream serves (vLLM: --served-model-name)")
    openai_api_key: SecretStr | None = Field(None, description="sent as Authorization: Bearer; never logged")
    # the service's own /v1 API: "bearer" wants a capkit token like /api/chat; "none" also serves
    # requests without one (OpenAI clients pointed at a local server send a dummy key); local use only
    openai_auth: Literal["bearer", "none"] = "bearer"
    response_cache: bool = True
    chat_context_messages: int = Field(6, ge=0)
    redis_prefix: str = "capkit"
    redis_retry_s: float = Field(2.0, gt=0, description="while Redis is down, probe it this often")
    password_hash_iterations: int = Field(1000, ge=1)

    # reference service: seeding on `serve` (idempotent) and its volumes
    seed_on_start: bool = True
    seed_users: int = Field(200, ge=0)
    seed_conversations: int = Field(2000, ge=0)
    seed_messages_per_conversation: int = Field(10, ge=0)
    seed_test_accounts: int = Field(50, ge=0)
    # a deliberate leak for proving capkit's soak detection: bytes kept per request (0: none)
    leak_bytes_per_request: int = Field(0, ge=0, le=16 * 2**20)
    # a deliberate breakdown for proving capkit's search under faults: above this many requests in
    # flight at once the service answers 503 (fail_mode=errors) or exits at once (exit, like an OOM
    # kill); 0: never
    fail_above_in_flight: int = Field(0, ge=0)
    fail_mode: Literal["errors", "exit"] = "errors"

    @field_validator("model_backends")
    @classmethod
    def _known_backends(cls, v: str) -> str:
        kinds = [k.strip() for k in v.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in ("builtin", "ollama", "openai")]
        if not kinds or unknown:
            raise ValueError(f"model backends must be a comma-separated list of builtin/ollama/openai (got {v!r})")
        return ",".join(kinds)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env == "production" and self.jwt_secret == DEV_JWT_SECRET:
            raise ValueError("CAPKIT_JWT_SECRET must be set to a secret of your own when CAPKIT_ENV=production")
        if self.env == "production" and self.openai_auth == "none":
            raise ValueError("CAPKIT_OPENAI_AUTH=none serves /v1 without a token: it is for local runs and refused "
                             "when CAPKIT_ENV=production")
        return self


def get_settings(**overrides) -> Settings:
    """Read the settings from the environment, with explicit ``overrides`` on top."""
    from pydantic import ValidationError

    from capkit.errors import ConfigError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        why = first["msg"].removeprefix("Value error, ")
        where = ".".join(str(p) for p in first.get("loc", ()))
        if not where:  # a rule across settings (the model validator) names its variables itself
            raise ConfigError(f"settings: {why}") from None
        raise ConfigError(f"setting {where}: {why} (environment variable CAPKIT_{where.upper()})") from None
