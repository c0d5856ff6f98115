"""Configuration from the environment (and a `.env` file in the working directory)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DeploymentMode(StrEnum):
    LOCAL = "local"  # loopback only, an implicit owner user, no login
    AUTHENTICATED = "authenticated"  # email + password login, session cookie, CSRF, API tokens


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

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
