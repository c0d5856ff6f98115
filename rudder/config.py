"""Configuration from the environment (and a `.env` file in the working directory)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class DeploymentMode(StrEnum):
    LOCAL = "local"  # loopback only, an implicit owner user, no login
    AUTHENTICATED = "authenticated"  # email + password login, session cookie, CSRF, API tokens


def _ours(name: str) -> bool:
    name = name.lower()  # pydantic-settings matches names case-insensitively
    return name.startswith("rudder_") or name == "database_url"


def _only_ours(source: PydanticBaseSettingsSource) -> PydanticBaseSettingsSource:
    """Hide every variable but RUDDER_* and DATABASE_URL from an environment (or .env) source.

    pydantic-settings reads a field from any variable named like the field or one of its aliases,
    case-insensitively: `home` was read from $HOME (the database and secrets.key went into `~`
    itself), `host` and `port` from $HOST and $PORT. Filtering the source, rather than trusting
    each field's aliases, keeps that true for fields added later.
    """
    if isinstance(source, EnvSettingsSource):  # the .env source is one too
        source.env_vars = {k: v for k, v in source.env_vars.items() if _ours(k)}
    return source


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, env_prefix="RUDDER_"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _only_ours(env_settings),
            _only_ours(dotenv_settings),
            file_secret_settings,
        )

    home: Path = Field(
        default=Path("~/.rudder"), validation_alias=AliasChoices("RUDDER_HOME", "home")
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("RUDDER_HOST", "host"))
    port: int = Field(default=3100, validation_alias=AliasChoices("RUDDER_PORT", "port"))
    public_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RUDDER_PUBLIC_URL", "public_url")
    )
    secrets_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RUDDER_SECRETS_KEY", "secrets_key")
    )
    feishu_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RUDDER_FEISHU_BASE_URL", "feishu_base_url")
    )
    deployment_mode: DeploymentMode = Field(
        default=DeploymentMode.LOCAL,
        validation_alias=AliasChoices("RUDDER_DEPLOYMENT_MODE", "deployment_mode"),
    )
    session_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RUDDER_SESSION_SECRET", "session_secret")
    )
    # Seconds a stopping run's process gets between SIGTERM and SIGKILL.
    run_stop_grace_s: float = 5.0
    # Who may give an agent a runtime that runs on this server (process, claude_local,
    # codex_local): `admins` (instance admins), `off` (nobody), or a comma-separated list of
    # command paths that org owners and admins may choose from (docs/security.md).
    server_runtimes: str = Field(
        default="admins",
        validation_alias=AliasChoices("RUDDER_SERVER_RUNTIMES", "server_runtimes"),
    )
    # Whether an organization's owner or admin may point an `http`/`openai` runtime at loopback,
    # link-local or private addresses (this server's own network). Off: refused (SSRF).
    allow_private_runtime_urls: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "RUDDER_ALLOW_PRIVATE_RUNTIME_URLS", "allow_private_runtime_urls"
        ),
    )
    # Authenticated mode: whether any signed-in user may create organizations (and own them),
    # or only instance admins.
    allow_org_creation: bool = Field(
        default=False,
        validation_alias=AliasChoices("RUDDER_ALLOW_ORG_CREATION", "allow_org_creation"),
    )

    # Hand-offs between agents' bots in a group (docs/agent-teams.md): at most this many per
    # person's message (RUDDER_HANDOFF_MAX_HOPS; 0 turns hand-offs off).
    handoff_max_hops: int = Field(default=3, ge=0, le=20)

    # Media (docs/media.md). Where attachment bytes live: by default files under RUDDER_HOME on
    # SQLite and the database on PostgreSQL; a directory here (shared by every instance in a
    # PostgreSQL deployment) is used instead when set.
    media_dir: Path | None = None
    # Days an attachment's bytes are kept (0: forever); the rows stay, marked expired.
    media_retention_days: float = 30.0
    # Caps on what Rudder downloads from a Feishu message: per image, per other file, per
    # message in total (MB), and the time one download may take (seconds).
    media_max_image_mb: float = 10.0
    media_max_file_mb: float = 50.0
    media_max_message_mb: float = 100.0
    media_fetch_timeout_s: float = 60.0

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.home_dir / 'rudder.db'}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def normalize_database_url(url: str) -> str:
    """Accept the usual spellings and pick our async drivers (psycopg 3, aiosqlite)."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def ensure_home(home: Path) -> Path:
    """Create RUDDER_HOME owner-only (0700): it holds secrets.key, session.key and by default the
    database. A directory that already exists is the operator's and keeps its mode."""
    if not home.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(home, 0o700)  # mkdir's mode is filtered by the umask; this is exact
    return home
