"""Process settings read from `HOOKLEDGER_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_BODY_BYTES = 256 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Shorter static tokens can be guessed; the same floor applies to [auth.tokens] entries.
MIN_ADMIN_TOKEN_LENGTH = 32
SUPPORTED_DRIVERS = {"postgresql+asyncpg", "sqlite+aiosqlite"}
# URL schemes without a driver name the async driver hookledger installs.
DRIVER_ALIASES = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


class Settings(BaseSettings):
    """Settings for one hookledger process.

    Sources, log mappings and metric definitions live in the TOML file named by
    `config`. Everything that differs between deployments of the same
    configuration (database, secrets, ports) comes from the environment.
    """

    model_config = SettingsConfigDict(env_prefix="HOOKLEDGER_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="Directory for the SQLite file and local logs.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; by default a SQLite file under data_dir.",
    )
    config: Path | None = Field(default=None, description="Path of the TOML configuration file.")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0, description="Default body cap in bytes.")
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Seconds a sender gets to deliver a whole body; slower ones get 408."
    )
    admin_token: SecretStr | None = Field(default=None, description="Static bearer token with every admin scope.")
    log_level: str = "info"
    log_format: str = Field(default="auto", description="json, console, or auto (JSON unless stdout is a TTY).")
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After seconds sent with 503 responses.")
    db_pool_size: int = Field(default=10, ge=1)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    ingest_batch_max_rows: int = Field(
        default=128, ge=1, description="Maximum deliveries stored by one multi-row insert and commit."
    )
    ingest_max_pending: int = Field(
        default=512,
        ge=1,
        description="Maximum deliveries in progress per process; more get 503 ingest_overloaded with Retry-After.",
    )
    # 200 ms is far below the shortest sender timeouts: Slack 3 s, Shopify 5 s, the Auth0 Action's
    # 3 s default budget. A delivery admitted at the limit still has time to be stored, and a
    # rejected one gets its 503 before the sender gives up.
    ingest_max_queue_delay_ms: int = Field(
        default=200,
        ge=0,
        description="Expected wait in milliseconds (event loop lag or batch queue delay) above which new "
        "deliveries get 503 ingest_overloaded with Retry-After; 0 turns the check off.",
    )
    ingest_flushers: int = Field(
        default=0,
        ge=0,
        description="Concurrent batch transactions per process; 0 picks 1 on SQLite and 2 on other databases.",
    )

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value not in {"json", "console", "auto"}:
            raise ValueError(f"must be json, console or auto, not {value!r}")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
        return value.lower()

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        length = len(value.get_secret_value().strip())
        if length < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(
                f"contains {length} characters; use at least {MIN_ADMIN_TOKEN_LENGTH} random characters "
                "(for example: openssl rand -hex 32)"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme, separator, rest = value.partition("://")
        if not separator:
            raise ValueError(
                "is not a database URL; use postgresql+asyncpg://user:password@host:5432/database "
                "or sqlite+aiosqlite:///path/to/file.sqlite3"
            )
        driver = DRIVER_ALIASES.get(scheme.lower(), scheme.lower())
        if driver not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"uses {scheme!r}, which hookledger does not support; use postgresql+asyncpg:// or sqlite+aiosqlite://"
            )
        return f"{driver}://{rest}"

    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to `<data_dir>/hookledger.sqlite3`."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hookledger.sqlite3').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
