"""A voice message as Feishu's speech-to-text takes it: 16 kHz, 16-bit, mono PCM, ≤ 60 s.

Feishu voice messages are Opus in an Ogg container; file_recognize accepts only raw PCM
(`format: "pcm"`, engine `16k_auto`). Decoding Opus and resampling 48 kHz to 16 kHz is done by
PyAV (`pip install 'rudder[voice]'`, the `av` package: FFmpeg's decoders in a wheel, no system
FFmpeg needed). It is optional: without it voice messages are handed to the agent as files and
not transcribed, and the reason says what to install. Only the Ogg demuxer is used (FFmpeg
probes nothing else), and only for bytes that sniff as Ogg: the bytes come from a chat, and
the less of FFmpeg they reach the better.

Decoding is CPU work on a bounded input (the file cap, 60 s of output); callers run it in a
thread. The PCM of 60 s is 1.92 MB, kept in memory for the one request that sends it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLE_RATE = 16_000
BYTES_PER_SECOND = SAMPLE_RATE * 2
MAX_SECONDS = 60
MAX_PCM = MAX_SECONDS * BYTES_PER_SECOND


class NotTranscribable(Exception):
    """The audio can't be turned into what speech-to-text takes; `str` is for people."""


def decoder_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def to_pcm(source: Path) -> bytes:
    """The audio of `source` as 16 kHz mono s16le PCM. Raises NotTranscribable when there is
    no decoder, the file is not audio, or it is longer than MAX_SECONDS."""
    try:
        import av
    except ImportError:
        raise NotTranscribable(
            "Rudder has no Opus decoder here (install the optional `rudder[voice]`)"
        ) from None
    pcm = bytearray()
    try:
        with av.open(str(source), mode="r", format="ogg") as container:
            if not container.streams.audio:
                raise NotTranscribable("the file has no audio")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                _append(pcm, resampler.resample(frame))
                if len(pcm) > MAX_PCM:
                    raise NotTranscribable(f"it is longer than {MAX_SECONDS} s")
            _append(pcm, resampler.resample(None))
    except NotTranscribable:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise NotTranscribable(f"the audio could not be decoded ({type(exc).__name__})") from None
    if len(pcm) > MAX_PCM:
        raise NotTranscribable(f"it is longer than {MAX_SECONDS} s")
    if not pcm:
        raise NotTranscribable("the audio is empty")
    return bytes(pcm)


def _append(pcm: bytearray, frames: list[Any]) -> None:
    for frame in frames:
        # Packed s16 mono: one plane, two bytes a sample (the plane may be padded).
        pcm += bytes(frame.planes[0])[: frame.samples * 2]
