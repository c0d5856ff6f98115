"""A fake `claude` / `codex` that records which skills it can discover, then replays a fixture.

Claude Code reads `.claude/skills/<name>/SKILL.md` in every `--add-dir` directory; Codex reads
`.agents/skills/<name>/SKILL.md` under its working directory. The files found (relative path →
text) go to SKILL_RECORD as one JSON line per call; the rest is tests/runtimes/fakes/fake_cli.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.runtimes.fakes import fake_cli


def _files(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".rudder-skill"
    }


def main() -> int:
    argv = sys.argv[1:]
    if argv and argv[0] != "--version" and argv != ["login", "status"]:
        found: dict[str, str] = {}
        for i, arg in enumerate(argv):
            if arg == "--add-dir" and i + 1 < len(argv):
                found.update(_files(Path(argv[i + 1]) / ".claude" / "skills"))
        found.update(_files(Path.cwd() / ".agents" / "skills"))
        with open(os.environ["SKILL_RECORD"], "a") as f:
            f.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "skills": found}) + "\n")
    return fake_cli.main()


if __name__ == "__main__":
    sys.exit(main())
