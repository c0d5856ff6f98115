"""A run's own directory: the message's files go in, the agent's attachments come out of it.

`<RUDDER_HOME>/runs/<run id>/` (owner-only) holds `attachments/` with the files of the
message the run answers; it is removed when the run ends. How each runtime sees it:
- process: its working directory unless `cwd` is configured; `RUDDER_RUN_DIR` and the context
  JSON's `run_dir` name it either way, and `attachments[].path` are absolute paths in it;
- claude_local / codex_local: their working directory unless `cwd` is configured (then Claude
  Code gets it with `--add-dir`); the files are named in the prompt, and Codex gets images
  with `--image`;
- http and openai get the bytes themselves (the context JSON, data URLs).
An agent may attach only regular files inside this directory (`resolve_outbound`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from rudder import texts
from rudder.db.models import Attachment
from rudder.domain.secrets import SecretBox
from rudder.media import links
from rudder.media.blobs import copy_out
from rudder.media.config import MediaConfig
from rudder.runtimes.base import AttachmentFile, RunContext

ATTACHMENTS = "attachments"
_LOCAL = frozenset({"process", "claude_local", "codex_local"})


def create(media: MediaConfig, run_id: str) -> Path:
    if not run_id.isalnum():
        raise ValueError("bad run id")
    media.runs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_dir = media.runs_dir / run_id
    if run_dir.exists():  # a second attempt after a crash starts clean
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(mode=0o700)
    return run_dir


def remove(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)


def _unique(folder: Path, name: str) -> Path:
    # Commas split Codex's --image list; a leading dash would read as an option.
    clean = name.replace(",", "_").lstrip("-") or "file"
    target = folder / clean
    stem, suffix = os.path.splitext(clean)
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{stem}-{n}{suffix}"
    return target


async def materialize(
    media: MediaConfig, run_dir: Path, rows: list[Attachment]
) -> list[AttachmentFile]:
    """Copy the stored attachments into the run's directory (streamed from the blob store)."""
    folder = run_dir / ATTACHMENTS
    files: list[AttachmentFile] = []
    for row in rows:
        path: Path | None = None
        reason = row.reason
        if row.status == "stored" and row.blob_key:
            folder.mkdir(mode=0o700, exist_ok=True)
            path = _unique(folder, row.name)
            try:
                await copy_out(media.store, row.blob_key, path)
            except (OSError, FileNotFoundError):
                path, reason = None, texts.MEDIA_NOT_STORED
        elif row.status == "expired":
            reason = reason or "expired"
        files.append(
            AttachmentFile(
                id=row.id,
                kind=row.kind,
                name=row.name,
                mime_type=row.mime_type,
                size=row.size,
                sha256=row.sha256,
                path=str(path) if path is not None else None,
                reason=reason,
                transcript=row.transcript,
            )
        )
    return files


def offer_links(
    media: MediaConfig, box: SecretBox, run_id: str, files: list[AttachmentFile]
) -> list[AttachmentFile]:
    """`files` with a signed, expiring download URL on each an `http` agent may fetch
    (media/links.py); the runtime lists it for the files too large to inline."""
    offered = []
    for a in files:
        if a.path is not None:
            made = links.link(box, media.public_url, run_id, a.id)
            a = dataclasses.replace(a, url=made.url, url_expires_at=made.expires_at)
        offered.append(a)
    return offered


def apply(runtime_type: str, ctx: RunContext, run_dir: Path) -> None:
    """Point the runtime at the run's directory (see the module's docstring)."""
    ctx.run_dir = str(run_dir)
    if runtime_type not in _LOCAL:
        return
    config = dict(ctx.runtime_config)
    extra = list(config.get("extra_args") or [])
    if not config.get("cwd"):
        config["cwd"] = str(run_dir)
    elif runtime_type == "claude_local":
        extra += ["--add-dir", str(run_dir)]
    if runtime_type == "codex_local":
        extra += [f"--image={a.path}" for a in ctx.attachments if a.path and _image(a)]
    if runtime_type != "process":
        config["extra_args"] = extra
    ctx.runtime_config = config


def _image(a: AttachmentFile) -> bool:
    return a.mime_type.startswith("image/") and a.kind in ("image", "cover")


def resolve_outbound(run_dir: Path, given: str) -> Path | str:
    """The file an agent asked to attach, or the reason it may not be sent.

    Relative paths are read from the run's directory. The path is resolved (every symlink
    followed) and must still be inside the run's directory and a regular file: `../`, absolute
    paths elsewhere and symlinks pointing out are all refused.
    """
    if not given or "\x00" in given:
        return texts.MEDIA_OUT_BAD_EVENT
    root = run_dir.resolve()
    candidate = Path(given)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        # Containment first, so nothing is learnt about files outside (not even if they exist).
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError):
        return texts.MEDIA_OUT_OUTSIDE
    if resolved == root or root not in resolved.parents:
        return texts.MEDIA_OUT_OUTSIDE
    if not resolved.exists():
        return texts.MEDIA_OUT_MISSING
    if not resolved.is_file():
        return texts.MEDIA_OUT_NOT_FILE
    return resolved


def open_inside(run_dir: Path, resolved: Path) -> BinaryIO | str:
    """Open a file `resolve_outbound` accepted, checking again on the open file itself: a path
    swapped for a symlink after the check (the agent may still be running) is refused."""
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return texts.MEDIA_OUT_OUTSIDE
    handle = os.fdopen(fd, "rb")
    try:
        real = Path(os.readlink(f"/proc/self/fd/{fd}")) if Path("/proc/self/fd").is_dir() else None
        root = run_dir.resolve()
        inside = real is None or (real != root and root in real.parents)
        if not inside or not stat.S_ISREG(os.fstat(fd).st_mode):
            handle.close()
            return texts.MEDIA_OUT_OUTSIDE
    except OSError:
        handle.close()
        return texts.MEDIA_OUT_OUTSIDE
    return handle
