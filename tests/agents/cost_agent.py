"""A `process` agent for the agent tests: answers "echo: <prompt>", reports a cost, and lists
the skills it was given (context JSON `skills`).

Env: COST_USD (the run's cost, default 0), TOKENS (input/output tokens instead of a cost),
FAIL (exit 1 with this on stderr), SLEEP (seconds before answering); a prompt with
"slow" in it takes 30 s.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    ctx = json.loads(sys.stdin.read())
    if os.environ.get("SLEEP"):
        time.sleep(float(os.environ["SLEEP"]))
    if "slow" in ctx["prompt"]:
        time.sleep(30)
    if os.environ.get("FAIL"):
        sys.stderr.write(os.environ["FAIL"] + "\n")
        return 1
    skills = [s["name"] for s in ctx.get("skills", [])]
    text = f"echo: {ctx['prompt']}" + (f" [skills: {', '.join(skills)}]" if skills else "")
    print(json.dumps({"type": "text", "text": text}), flush=True)
    usage: dict[str, object] = {"type": "usage"}
    if os.environ.get("TOKENS"):
        tokens = int(os.environ["TOKENS"])
        usage.update(input_tokens=tokens, output_tokens=tokens, model=os.environ.get("MODEL"))
    else:
        usage["cost_usd"] = float(os.environ.get("COST_USD", "0"))
    print(json.dumps(usage), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
