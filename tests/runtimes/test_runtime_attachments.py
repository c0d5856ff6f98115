"""The files of a message, in the form each runtime takes them, and attachment events back."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.media import rundir
from rudder.media.blobs import FileBlobStore
from rudder.media.config import MediaConfig
from rudder.runtimes._attachments import HTTP_INLINE_MAX, INLINE_TOO_LARGE
from rudder.runtimes._payload import cli_prompt, context_payload
from rudder.runtimes.base import AttachmentFile, RunEventKind
from rudder.runtimes.http import HttpRuntime
from rudder.runtimes.openai import chat_messages, chunk_events

from .runtime_helpers import collect, make_context, serve

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452")


def _file(tmp: Path, name: str, data: bytes, mime: str, kind: str = "file") -> AttachmentFile:
    path = tmp / name
    path.write_bytes(data)
    return AttachmentFile("a-" + name, kind, name, mime, len(data), "sha", str(path))


def _media(tmp: Path) -> MediaConfig:
    return MediaConfig(FileBlobStore(tmp / "blobs"), tmp / "runs", 10, 10, 10, 1.0, 0)


def test_process_gets_paths_and_the_run_directory(tmp_path: Path) -> None:
    ctx = make_context({"command": "x"})
    ctx.attachments = [_file(tmp_path, "a.png", PNG, "image/png", "image")]
    run_dir = rundir.create(_media(tmp_path), "run1")
    rundir.apply("process", ctx, run_dir)
    payload = context_payload(ctx)
    assert payload["run_dir"] == str(run_dir)
    assert ctx.runtime_config["cwd"] == str(run_dir)
    [item] = payload["attachments"]
    assert item["path"] == str(tmp_path / "a.png") and "data_base64" not in item


def test_a_missing_attachment_is_listed_with_its_reason() -> None:
    ctx = make_context({"command": "x"})
    ctx.attachments = [AttachmentFile("1", "file", "big.iso", "x", 0, None, None, "too large")]
    [item] = context_payload(ctx)["attachments"]
    assert item["missing"] == "too large" and "path" not in item


def test_http_gets_the_bytes_inline_up_to_a_total(tmp_path: Path) -> None:
    ctx = make_context({"url": "http://x"})
    small = _file(tmp_path, "s.txt", b"hello", "text/plain")
    big = AttachmentFile("b", "file", "b.bin", "x", HTTP_INLINE_MAX + 1, None, small.path)
    ctx.attachments = [small, big]
    items = context_payload(ctx, inline_attachments=True)["attachments"]
    assert base64.b64decode(items[0]["data_base64"]) == b"hello"
    assert "path" not in items[0]
    assert items[1]["omitted"] == INLINE_TOO_LARGE and "data_base64" not in items[1]


def test_local_clis_name_the_files_and_codex_gets_images(tmp_path: Path) -> None:
    image = _file(tmp_path, "shot,1.png", PNG, "image/png", "image")
    doc = _file(tmp_path, "spec.pdf", b"%PDF-", "application/pdf")
    for runtime_type, cwd in (("codex_local", None), ("claude_local", "/srv/repo")):
        ctx = make_context({"cwd": cwd} if cwd else {})
        ctx.attachments = [image, doc]
        run_dir = rundir.create(_media(tmp_path), "r" + runtime_type.replace("_", ""))
        rundir.apply(runtime_type, ctx, run_dir)
        prompt = cli_prompt(ctx, resuming=False)
        assert str(tmp_path / "spec.pdf") in prompt and str(tmp_path / "shot,1.png") in prompt
        assert cli_prompt(ctx, resuming=True).count("spec.pdf") == 1
        extra = ctx.runtime_config["extra_args"]
        if runtime_type == "codex_local":
            assert ctx.runtime_config["cwd"] == str(run_dir)
            assert extra == [f"--image={image.path}"]  # one value: never eats the "-" after it
        else:
            assert ctx.runtime_config["cwd"] == "/srv/repo"
            assert extra == ["--add-dir", str(run_dir)]


def test_openai_gets_images_as_data_urls_and_small_text_inline(tmp_path: Path) -> None:
    ctx = make_context({"base_url": "http://x", "model": "m"}, prompt="what is this?")
    ctx.attachments = [
        _file(tmp_path, "a.png", PNG, "image/png", "image"),
        _file(tmp_path, "notes.txt", b"line one\n", "text/plain"),
        _file(tmp_path, "data.bin", b"\x00\x01", "application/octet-stream"),
    ]
    messages = chat_messages(ctx, None)
    last = messages[-1]
    assert last["role"] == "user"
    text, image = last["content"]
    assert text["type"] == "text" and text["text"].startswith("what is this?")
    assert '<file name="notes.txt">\nline one\n\n</file>' in text["text"]
    assert "data.bin" in text["text"]
    assert image["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    # Earlier messages stay plain text.
    assert all(isinstance(m["content"], str) for m in messages[:-1])


def test_outbound_paths_must_stay_inside_the_run_directory(tmp_path: Path) -> None:
    run_dir = rundir.create(_media(tmp_path), "run2")
    (run_dir / "ok.txt").write_text("x")
    (run_dir / "sub").mkdir()
    (run_dir / "inner").symlink_to(run_dir / "ok.txt")
    (run_dir / "out").symlink_to("/etc/passwd")
    (run_dir / "updir").symlink_to(tmp_path)
    (tmp_path / "secret").write_text("s")
    assert rundir.resolve_outbound(run_dir, "ok.txt") == (run_dir / "ok.txt").resolve()
    assert rundir.resolve_outbound(run_dir, "inner") == (run_dir / "ok.txt").resolve()
    assert rundir.resolve_outbound(run_dir, str(run_dir / "ok.txt")) == (run_dir / "ok.txt")
    for bad in ("../secret", "out", "updir/secret", "/etc/passwd", "sub/../../secret", "."):
        assert rundir.resolve_outbound(run_dir, bad) == "not inside the run's directory", bad
    assert rundir.resolve_outbound(run_dir, "sub") == "not a regular file"
    assert rundir.resolve_outbound(run_dir, "nope.txt") == "no such file"
    assert rundir.resolve_outbound(run_dir, "a\x00b") == "the attachment event names no file"
    assert oct(os.stat(run_dir).st_mode & 0o777) == "0o700"


async def test_an_http_agent_receives_the_bytes_and_attaches_a_file_back(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def agent(request: Request) -> Response:
        body = await request.json()
        seen.append(body)
        lines = [
            {"type": "text", "text": "here"},
            {
                "type": "attachment",
                "name": "r.txt",
                "data_base64": base64.b64encode(b"hi").decode(),
            },
        ]
        return Response(
            "".join(json.dumps(x) + "\n" for x in lines), media_type="application/x-ndjson"
        )

    app = Starlette(routes=[Route("/", agent, methods=["POST"])])
    async with serve(app) as url:
        ctx = make_context({"url": url + "/"})
        ctx.attachments = [_file(tmp_path, "in.png", PNG, "image/png", "image")]
        events = await collect(HttpRuntime(), ctx)
    item = seen[0]["attachments"][0]
    assert base64.b64decode(item["data_base64"]) == PNG
    [attached] = [e for e in events if e.kind is RunEventKind.ATTACHMENT]
    assert attached.text == "r.txt" and attached.data["data_base64"] == "aGk="


def test_images_a_model_returns_become_attachments_but_urls_are_never_fetched() -> None:
    data = base64.b64encode(PNG).decode()
    chunk = {
        "choices": [
            {
                "delta": {
                    "content": "here",
                    "images": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{data}"},
                        },
                        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/x.png"}},
                        {"type": "image_url", "image_url": {"url": "data:text/html;base64,PGI+"}},
                    ],
                }
            }
        ]
    }
    events = list(chunk_events(chunk))
    assert [e.kind for e in events] == [RunEventKind.TEXT, RunEventKind.ATTACHMENT]
    assert events[1].data == {"name": "image-1.png", "data_base64": data}
