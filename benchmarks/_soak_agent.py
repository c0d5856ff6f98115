"""The soak's `process` agent: answers at once with a text derived from the message's token.

The prompt carries a token such as ``soak-000123-ab12``; the answer is ``answer soak-000123-ab12
21ba-321000-kaos`` (the token and its reverse), so the soak knows exactly which text is real.
A prompt without a token (the API clients' local messages) gets ``ok``. ``SOAK_AGENT_DELAY``
(seconds) makes it think first, so that a kill finds runs in flight.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time


def answer(prompt: str) -> str:
    found = re.search(r"soak-\d+-[0-9a-f]+", prompt)
    if found is None:
        return "ok"
    token = found.group(0)
    return f"answer {token} {token[::-1]}"


if __name__ == "__main__":
    time.sleep(float(os.environ.get("SOAK_AGENT_DELAY") or 0))
    sys.stdout.write(answer(str(json.loads(sys.stdin.read()).get("prompt") or "")))
