"""What the operator lets runtimes do on this server: which commands run, which addresses are called.

A `process`, `claude_local` or `codex_local` runtime runs a command as the Rudder user, with its
secrets key and every bot's credentials in reach; an `http` or `openai` runtime makes this server
send a request. Both are the operator's decision for the whole deployment, not an organization's
(docs/security.md, "Trust model"):

- `RUDDER_SERVER_RUNTIMES=admins` (default): only instance admins (and the operator on the command
  line) choose a server-executing runtime; in authenticated mode one that no instance admin chose
  (stored before this rule, or copied in by hand) does not start.
- `RUDDER_SERVER_RUNTIMES=off`: none, except the bundled example agent (Rudder's own module).
- `RUDDER_SERVER_RUNTIMES=/usr/local/bin/claude,/opt/agents/run`: only these commands, written as
  absolute paths; org owners and admins may choose them (and their arguments).
- `http`/`openai` targets must be public addresses unless `RUDDER_ALLOW_PRIVATE_RUNTIME_URLS=1`.
  The host is resolved and every address checked when the runtime is saved and again when the
  request is made; the connection goes to the checked address (a name that resolves differently a
  moment later — DNS rebinding — cannot slip through).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import httpcore
import httpx

if TYPE_CHECKING:
    from rudder.config import Settings

SERVER_RUNTIMES: Final = frozenset({"process", "claude_local", "codex_local"})
URL_FIELDS: Final[Mapping[str, str]] = {"http": "url", "openai": "base_url"}
_DEFAULT_COMMANDS: Final[Mapping[str, str]] = {"claude_local": "claude", "codex_local": "codex"}
# Environment variables that change what an allowed command loads or runs first; an allowlist
# of commands would mean nothing if an organization could set them.
_LOADER_ENV: Final = frozenset(
    {"PATH", "BASH_ENV", "ENV", "NODE_OPTIONS", "PERL5OPT", "RUBYOPT", "SHELLOPTS"}
)
_LOADER_ENV_PREFIXES: Final = ("LD_", "DYLD_", "PYTHON", "GCONV_", "NODE_")


@dataclass(frozen=True, slots=True)
class RuntimePolicy:
    server_runtimes: str = "admins"  # admins | off | allowlist
    allowed_commands: tuple[str, ...] = ()
    # Local mode: loopback only, and the implicit owner is the operator.
    local_mode: bool = False
    allow_private_urls: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimePolicy:
        from rudder.config import DeploymentMode

        mode, commands = parse_server_runtimes(settings.server_runtimes)
        return cls(
            server_runtimes=mode,
            allowed_commands=commands,
            local_mode=settings.deployment_mode is DeploymentMode.LOCAL,
            allow_private_urls=settings.allow_private_runtime_urls,
        )


def parse_server_runtimes(value: str) -> tuple[str, tuple[str, ...]]:
    """`admins`, `off`, or a comma-separated allowlist of absolute command paths."""
    text = value.strip()
    if text.lower() in ("", "admins"):
        return "admins", ()
    if text.lower() == "off":
        return "off", ()
    paths = tuple(p.strip() for p in text.split(",") if p.strip())
    for path in paths:
        if not os.path.isabs(path):
            raise ValueError(
                f"RUDDER_SERVER_RUNTIMES: {path!r} is not an absolute path; write `admins`, `off` "
                "or a comma-separated list of absolute command paths"
            )
    return "allowlist", tuple(os.path.realpath(p) for p in paths)


# -- Runtimes that run a command on this server ---------------------------------------------------


class PolicyRefusal(Exception):
    """Why the operator's policy refuses a runtime (a 403 at the edge, a failed run at run time)."""


def _command(runtime_type: str, config: Mapping[str, Any]) -> str:
    return str(config.get("command") or _DEFAULT_COMMANDS.get(runtime_type, ""))


def allowlist_problem(
    policy: RuntimePolicy, runtime_type: str, config: Mapping[str, Any]
) -> str | None:
    """With an allowlist: why this config is outside it (command, or a loader variable)."""
    from rudder import texts

    command = _command(runtime_type, config)
    if not os.path.isabs(command) or os.path.realpath(command) not in policy.allowed_commands:
        return texts.SERVER_RUNTIME_NOT_LISTED.format(
            command=command, allowed=", ".join(policy.allowed_commands)
        )
    for name in dict(config.get("env") or {}):
        upper = str(name).upper()
        if upper in _LOADER_ENV or upper.startswith(_LOADER_ENV_PREFIXES):
            return texts.SERVER_RUNTIME_LOADER_ENV.format(name=name)
    return None


def is_bundled_example(runtime_type: str, config: Mapping[str, Any]) -> bool:
    """The bundled offline example agent (Rudder's own module, a fixed command): always allowed."""
    from rudder.runtimes import DEFAULT_AGENT_RUNTIME, validate_runtime_config

    example_type, example_config = DEFAULT_AGENT_RUNTIME
    if runtime_type != example_type:
        return False
    try:
        return validate_runtime_config(runtime_type, dict(config)) == validate_runtime_config(
            example_type, dict(example_config)
        )
    except ValueError:
        return False


def choice_problem(
    policy: RuntimePolicy, runtime_type: str, config: Mapping[str, Any], *, instance_admin: bool
) -> str | None:
    """Why whoever is choosing this (server-executing) runtime may not, or None.

    `instance_admin`: an instance admin or the operator (the command line, local mode's owner).
    """
    from rudder import texts

    if runtime_type not in SERVER_RUNTIMES or is_bundled_example(runtime_type, config):
        return None
    if policy.server_runtimes == "off":
        return texts.SERVER_RUNTIMES_OFF
    if policy.server_runtimes == "allowlist":
        return allowlist_problem(policy, runtime_type, config)
    return None if instance_admin else texts.SERVER_RUNTIME_ADMINS_ONLY


def start_problem(
    policy: RuntimePolicy, runtime_type: str, config: Mapping[str, Any], approved_by: str | None
) -> str | None:
    """At run time: why this stored runtime may not start now, or None (defence in depth)."""
    from rudder import texts

    if runtime_type not in SERVER_RUNTIMES or is_bundled_example(runtime_type, config):
        return None
    if policy.server_runtimes == "off":
        return texts.SERVER_RUNTIMES_OFF
    if policy.server_runtimes == "allowlist":
        return allowlist_problem(policy, runtime_type, config)
    if approved_by is None and not policy.local_mode:
        return texts.SERVER_RUNTIME_NOT_APPROVED
    return None


# -- Runtimes that call a URL (SSRF) --------------------------------------------------------------


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What makes `ip` part of this server's own network (loopback, private …), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_kind(embedded)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "non-public"
    return None


class UrlRefused(ValueError):
    """A runtime URL that points into this server's own network."""


def _refusal(field: str, host: str, address: str, kind: str) -> UrlRefused:
    from rudder import texts

    where = host if host == address else f"{host} ({address})"
    return UrlRefused(texts.PRIVATE_RUNTIME_URL.format(field=field, where=where, kind=kind))


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal: itself); [] when it does not resolve."""
    try:
        return [ipaddress.ip_address(host.strip("[]")).compressed]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in found:
            found.append(address)
    return found


def check_addresses(field: str, host: str, addresses: list[str]) -> None:
    for address in addresses:
        kind = address_kind(ipaddress.ip_address(address))
        if kind is not None:
            raise _refusal(field, host, address, kind)


async def check_url(url: str, field: str, *, allow_private: bool) -> None:
    """Raise `UrlRefused` naming `field` when `url`'s host is (or resolves to) a non-public
    address. A name that does not resolve passes here; the request itself then fails."""
    if allow_private:
        return
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UrlRefused(f"{field}: {exc}") from None
    host = parsed.host
    if not host:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    check_addresses(field, host, await resolve(host, port))


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses non-public addresses, then connects to a checked
    address: TLS still verifies the name (httpcore passes it as SNI separately)."""

    def __init__(self, field: str) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._field = field

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        try:
            check_addresses(self._field, host, addresses)
        except UrlRefused as exc:
            raise httpcore.ConnectError(str(exc)) from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("runtimes may not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(field: str, *, allow_private: bool) -> httpx.AsyncClient:
    """The client a runtime request goes through. No httpx timeouts: the run deadline bounds
    every wait. Guarded, it connects directly (environment proxies are not used)."""
    if allow_private:
        return httpx.AsyncClient(timeout=None)
    transport = httpx.AsyncHTTPTransport()
    # httpx has no public hook for the network backend; httpcore's pool takes one, so the
    # transport gets a pool built with ours (same TLS defaults as httpx's own).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=_GuardedBackend(field)
    )
    return httpx.AsyncClient(timeout=None, transport=transport)
