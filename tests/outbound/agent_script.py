"""A `process` agent for the outbound tests: the prompt is a JSON spec of exactly what to say.

{"text": str, "repeat": int, "pieces": int, "delay": float, "fail": str}
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    spec = json.loads(json.loads(sys.stdin.read())["prompt"])
    text = str(spec.get("text", "")) * int(spec.get("repeat", 1))
    pieces = max(1, int(spec.get("pieces", 1)))
    size = -(-len(text) // pieces) or 1
    for start in range(0, len(text), size):
        sys.stdout.buffer.write(text[start : start + size].encode())
        sys.stdout.buffer.flush()
        time.sleep(float(spec.get("delay", 0)))
    if spec.get("fail"):
        sys.stderr.write(str(spec["fail"]) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
