"""A test agent for hand-offs, run by the `process` runtime: it passes a route along.

A message (or a hand-off's context) carries `route: Alpha>Beta>Gamma at: N`; the agent answers
for step N by mentioning the next agent of the route (`@Beta your turn`) with the route at N+1,
or says it is done at the route's end. `echo: …` is answered word for word. `slow: Name` makes that agent's answer long and slow, so
a stop can land while it runs. Deterministic and offline, like the bundled example agent.
"""

from __future__ import annotations

import json
import re
import sys
import time

_ROUTE = re.compile(r"route: ([\w>]+)(?: at: (\d+))?")
_SLOW = re.compile(r"slow: (\w+)")


def answer(context: dict[str, object]) -> tuple[str, bool]:
    prompt = str(context.get("prompt") or "")
    agent = context.get("agent")
    me = str(agent.get("name", "")) if isinstance(agent, dict) else ""
    if prompt.startswith("echo: "):  # the reply is given word for word (hostile replies)
        return prompt[len("echo: ") :], False
    routes = _ROUTE.findall(prompt)
    slow = me in _SLOW.findall(prompt)
    if not routes:
        return f"{me} has no route.", slow
    names, at = routes[-1][0].split(">"), int(routes[-1][1] or 0)
    extra = f" slow: {' slow: '.join(_SLOW.findall(prompt))}" if _SLOW.search(prompt) else ""
    if at + 1 < len(names):
        nxt = names[at + 1]
        return f"@{nxt} your turn (route: {'>'.join(names)} at: {at + 1}{extra})", slow
    return f"{me} is done (end of the route).", slow


def main() -> int:
    text, slow = answer(json.loads(sys.stdin.read()))
    if slow:
        # Long and slow: a stop lands while this runs; the route is never passed on.
        for i in range(600):
            sys.stdout.write(f"w{i} ")
            sys.stdout.flush()
            time.sleep(0.05)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
