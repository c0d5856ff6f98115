"""An offline twin of the Feishu/Lark Open Platform (see docs/sandbox.md)."""

from rudder.sandbox.core import Sandbox
from rudder.sandbox.server import DEFAULT_PORT, SandboxServer, create_sandbox_app, serve_sandbox

__all__ = ["DEFAULT_PORT", "Sandbox", "SandboxServer", "create_sandbox_app", "serve_sandbox"]
