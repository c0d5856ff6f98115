"""Real Ogg/Opus voice notes for the tests, as Feishu's clients record them (48 kHz mono Opus)."""

from __future__ import annotations

import io
import math
from array import array

import pytest

av = pytest.importorskip("av", reason="voice transcripts need the optional `av` (rudder[voice])")


def voice_note(seconds: float, rate: int = 48_000) -> bytes:
    """`seconds` of a 440 Hz tone, encoded as Opus in Ogg."""
    samples = array(
        "h",
        (int(8000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(int(seconds * rate))),
    )
    out = io.BytesIO()
    with av.open(out, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate)
        stream.layout = "mono"
        frame_size = 960
        for start in range(0, len(samples), frame_size * 50):
            piece = samples[start : start + frame_size * 50]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(piece))
            frame.planes[0].update(
                piece.tobytes() + b"\x00" * (frame.planes[0].buffer_size - 2 * len(piece))
            )
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()
