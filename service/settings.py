"""The price service's settings, read from ``DROPPRICE_*`` environment variables.

One typed object (pydantic-settings) for everything the process needs to run;
model hyperparameters and drop rules are not settings, they live in ``configs/``.
There are no usable default secrets: API keys are configured as SHA-256 digests
(``dropprice api-key new`` prints a fresh key and its digest), and a service with
no keys refuses to start unless ``DROPPRICE_AUTH_DISABLED=true`` says, explicitly,
that this is a development instance.

Example:
    DROPPRICE_REDIS_URL=redis://10.0.0.5:6379/0 \\
    DROPPRICE_API_KEYS='{"9f86d0...": "pos", "60303a...": "admin"}' \\
    dropprice serve --workers 2
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Role", "Settings"]

_DIGEST = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


class Role(StrEnum):
    """What an API key may do; each role includes the ones before it."""

    pos = "pos"
    """Point of sale: read prices, report events."""
    operator = "operator"
    """Also configs, drops, previews and re-fits."""
    admin = "admin"
    """Also approvals, rollbacks and key-holder administration."""

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: Role) -> bool:
        """Whether this role may call an endpoint that requires ``required``."""
        return _RANK[self] >= _RANK[required]


_RANK = {Role.pos: 0, Role.operator: 1, Role.admin: 2}


class Settings(BaseSettings):
    """Settings of one service process (environment prefix ``DROPPRICE_``)."""

    model_config = SettingsConfigDict(
        env_prefix="DROPPRICE_", extra="ignore", frozen=True, validate_default=True
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis to use: ``redis://host:port/db`` or ``redis+cluster://host:port``.
    ``dropprice serve`` without ``--redis-url`` starts an embedded server and sets it."""
    redis_cluster: bool = False
    """Treat a plain ``redis://`` URL as a Redis Cluster node (``--cluster``)."""
    redis_timeout_ms: int = Field(default=250, ge=5, le=30_000)
    """Time budget of one Redis call on the request path (connect and read), in ms."""
    config_dir: Path = Path("configs")
    """Operator configs loaded at startup (``defaults.yaml``, ``categories.yaml``, ``drops/``)."""
    api_keys: dict[str, Role] = Field(default_factory=dict)
    """API key digests and their roles, as JSON: ``{"<sha256 hex of the key>": "pos"}``
    (an optional ``sha256:`` prefix is accepted). Plain keys are never configured."""
    auth_disabled: bool = False
    """Development only: serve every request as ``admin`` without a key."""
    quote_secret: SecretStr | None = None
    """Key signing quote ids (32+ characters). Unset: a random key shared through
    Redis (``dp:secret:quote``), so every worker and host honours the same quotes."""
    quote_ttl_seconds: int | None = Field(default=None, ge=1, le=3600)
    """Override of ``quote_ttl_seconds`` in ``configs/defaults.yaml`` (default 120 s)."""
    dedupe_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    """How long an ``event_id`` is remembered; a replay within it changes nothing."""
    stream_maxlen: int = Field(default=200_000, ge=1000, le=100_000_000)
    """Approximate entries kept per SKU event stream."""
    resync_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """Full resynchronisation of the in-process prices and counters from Redis."""
    retry_after_s: int = Field(default=1, ge=1, le=3600)
    """``Retry-After`` sent with a 503 when Redis is unreachable."""
    intensity_cache_s: float = Field(default=30.0, ge=0, le=3600)
    """How long a computed intensity series is reused for the same SKU and market."""
    log_level: str = "INFO"
    """Python logging level of the JSON logs."""
    access_log: bool = True
    """Log one JSON line per request (with its ``X-Request-ID`` and trace id)."""
    access_log_sample: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of successful requests given an access line (answers of 400 and above are
    always logged); below 1 on hosts where even a buffered line per read is too much."""
    otel_enabled: bool = False
    """Create OpenTelemetry spans for requests (needs ``pip install "dropprice[otel]"``
    and a tracer provider configured in the process; see :mod:`service.tracing`)."""
    rate_limit_enabled: bool = True
    """Per-API-key rate limiting (429 + ``Retry-After``; see :mod:`service.ratelimit`)."""
    rate_limit_pos_per_second: float | None = Field(default=500.0, ge=0, le=1_000_000)
    """Sustained requests/s per ``pos`` key and worker process; 0 or unset: unlimited."""
    rate_limit_pos_burst: int | None = Field(default=1000, ge=1, le=10_000_000)
    """Burst size of a ``pos`` key's bucket (default: twice the rate)."""
    rate_limit_operator_per_second: float | None = Field(default=None, ge=0, le=1_000_000)
    """Requests/s per ``operator`` key and worker; unset: unlimited."""
    rate_limit_operator_burst: int | None = Field(default=None, ge=1, le=10_000_000)
    """Burst size of an ``operator`` key's bucket (default: twice the rate)."""
    rate_limit_admin_per_second: float | None = Field(default=None, ge=0, le=1_000_000)
    """Requests/s per ``admin`` key and worker; unset: unlimited."""
    rate_limit_admin_burst: int | None = Field(default=None, ge=1, le=10_000_000)
    """Burst size of an ``admin`` key's bucket (default: twice the rate)."""
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    """Largest request body accepted; larger ones get 413 (see :mod:`service.limits`)."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1 << 20)
    """Largest total size of a request's header names and values; larger requests get
    431 before the API key is looked at (see :mod:`service.limits`)."""
    price_tolerance_pct: float = Field(default=2.0, ge=0, le=100)
    """A sale whose reported ``unit_price`` differs from the charged price by more than
    this percent of the charged price is flagged ``price_check: mismatch`` in its result
    and counted in ``dropprice_price_mismatch_total``."""

    @field_validator("api_keys")
    @classmethod
    def _digests_only(cls, value: dict[str, Role]) -> dict[str, Role]:
        out: dict[str, Role] = {}
        for digest, role in value.items():
            match = _DIGEST.match(digest.strip().lower())
            if match is None:
                shown = digest[:8] + "..." if len(digest) > 8 else digest
                raise ValueError(
                    "DROPPRICE_API_KEYS entries must be SHA-256 digests of keys (64 hex "
                    f"characters, optionally prefixed 'sha256:'), got {shown!r}; "
                    "`dropprice api-key new --role pos` prints a key and its digest"
                )
            out[match.group(1)] = role
        return out

    @field_validator("quote_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                f"DROPPRICE_QUOTE_SECRET must be at least 32 characters, got "
                f"{len(value.get_secret_value())}"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        allowed = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        if value.upper() not in allowed:
            raise ValueError(f"log_level must be one of {list(allowed)}, got {value!r}")
        return value.upper()

    @model_validator(mode="after")
    def _auth_configured(self) -> Settings:
        if not self.api_keys and not self.auth_disabled:
            raise ValueError(
                "no API keys configured: set DROPPRICE_API_KEYS to a JSON map of key "
                "digests to roles (`dropprice api-key new` makes one), or set "
                "DROPPRICE_AUTH_DISABLED=true for a local development instance"
            )
        return self

    @property
    def redis_timeout_s(self) -> float:
        return self.redis_timeout_ms / 1000.0
