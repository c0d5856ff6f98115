"""What the sandbox's speech recognizer answers and what it was sent (rudder/sandbox/speech.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Recognition:
    app_id: str
    file_id: str
    size: int
    seconds: float
    sha256: str
    text: str
    at: float

    def public(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "file_id": self.file_id,
            "size": self.size,
            "seconds": self.seconds,
            "sha256": self.sha256,
            "text": self.text,
            "at": self.at,
        }


@dataclass(slots=True)
class SpeechState:
    """What the recognizer answers (per app; `None` for every app) and what it was sent."""

    texts: dict[str | None, str] = field(default_factory=dict)
    recognitions: list[Recognition] = field(default_factory=list)
