"""A `process` agent for the media tests.

It answers with one line per attachment it was given: `<name> <sha256 of the file on disk>`
(and ` transcript=<text>` for a voice message's transcript, or `<name> missing: <reason>`),
then `prompt: <prompt>` when the prompt carries a voice note's line. When the prompt asks, it attaches files to its reply:
- "send image" / "send file": writes out.png / notes.pdf in its run directory and attaches them;
- "send traversal": asks for ../../etc/passwd; "send absolute": an absolute path outside;
- "send symlink": a symlink in its run directory pointing outside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000005000153a3a3c50000000049454e44ae426082"
)


def emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main() -> int:
    ctx = json.loads(sys.stdin.read())
    run_dir = Path(os.environ["RUDDER_RUN_DIR"])
    assert ctx["run_dir"] == str(run_dir)
    lines = []
    for a in ctx.get("attachments", []):
        if a.get("path"):
            digest = hashlib.sha256(Path(a["path"]).read_bytes()).hexdigest()
            line = f"{a['name']} {a['mime_type']} {digest}"
            if a.get("transcript"):
                line += f" transcript={a['transcript']}"
            lines.append(line)
        else:
            lines.append(f"{a['name']} missing: {a.get('missing')}")
    prompt = ctx["prompt"]
    if "(Voice message" in prompt:
        lines.append("prompt: " + prompt)
    emit({"type": "text", "text": "\n".join(lines) or "no attachments"})
    if "send image" in prompt:
        (run_dir / "out.png").write_bytes(PNG)
        emit({"type": "attachment", "path": "out.png"})
    if "send file" in prompt:
        (run_dir / "notes.pdf").write_bytes(b"%PDF-1.4\n% a tiny pdf\n")
        emit({"type": "attachment", "path": str(run_dir / "notes.pdf")})
    if "send traversal" in prompt:
        emit({"type": "attachment", "path": "../../../../../../etc/passwd"})
    if "send absolute" in prompt:
        emit({"type": "attachment", "path": "/etc/hostname"})
    if "send symlink" in prompt:
        (run_dir / "link.txt").symlink_to("/etc/passwd")
        emit({"type": "attachment", "path": "link.txt"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
