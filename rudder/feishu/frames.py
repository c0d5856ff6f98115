"""The long-connection wire format: protobuf ``pbbp2.Frame`` messages.

Every WebSocket message of the Feishu/Lark long connection is one binary frame holding one
serialized ``Frame`` (proto2, package ``pbbp2``; field numbers as in the official SDKs'
``pbbp2.proto``). protoc is not available at build time, so the descriptor is built in code
with ``descriptor_pb2`` and the message class comes from the protobuf runtime; callers only
see the typed :class:`Frame` dataclass below.
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = [
    "HEADER_BIZ_RT",
    "HEADER_HANDSHAKE_AUTH_ERRCODE",
    "HEADER_HANDSHAKE_MSG",
    "HEADER_HANDSHAKE_STATUS",
    "HEADER_MESSAGE_ID",
    "HEADER_SEQ",
    "HEADER_SUM",
    "HEADER_TRACE_ID",
    "HEADER_TYPE",
    "MAX_FRAGMENTS",
    "FragmentAssembler",
    "Frame",
    "FrameDecodeError",
    "FrameMethod",
    "decode_frame",
    "encode_frame",
    "fragment_payload",
    "ping_frame",
]

HEADER_TYPE = "type"
HEADER_MESSAGE_ID = "message_id"
HEADER_SUM = "sum"
HEADER_SEQ = "seq"
HEADER_TRACE_ID = "trace_id"
HEADER_BIZ_RT = "biz_rt"
# Handshake denial headers (HTTP response headers, not frame headers).
HEADER_HANDSHAKE_STATUS = "handshake-status"
HEADER_HANDSHAKE_MSG = "handshake-msg"
HEADER_HANDSHAKE_AUTH_ERRCODE = "handshake-autherrcode"

_UINT64_MAX = 2**64 - 1
# Upper bound on the parts of one fragmented payload. ``sum`` comes off the wire and sizes the
# slot list up front, so without a bound one frame saying sum=10**9 costs gigabytes. Feishu
# splits only payloads over its frame limit into a handful of parts; this leaves ample room.
MAX_FRAGMENTS = 1024
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


class FrameMethod(enum.IntEnum):
    CONTROL = 0  # ping / pong
    DATA = 1  # events, and the client's acks to them


class FrameDecodeError(ValueError):
    """The bytes are not a valid ``pbbp2.Frame``."""


@dataclass(slots=True)
class Frame:
    seq_id: int = 0
    log_id: int = 0
    service: int = 0
    method: int = FrameMethod.CONTROL
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload_encoding: str | None = None
    payload_type: str | None = None
    payload: bytes | None = None
    log_id_new: str | None = None

    def header(self, key: str) -> str | None:
        for k, v in self.headers:
            if k == key:
                return v
        return None

    def with_header(self, key: str, value: str) -> Frame:
        """Set ``key`` (replacing an existing value) and return self for chaining."""
        self.headers = [(k, v) for k, v in self.headers if k != key]
        self.headers.append((key, value))
        return self


def _field(
    name: str, number: int, ftype: int, label: int, type_name: str | None = None
) -> descriptor_pb2.FieldDescriptorProto:
    f = descriptor_pb2.FieldDescriptorProto(name=name, number=number, type=ftype, label=label)
    if type_name is not None:
        f.type_name = type_name
    return f


@functools.cache
def _message_classes() -> tuple[Any, Any]:
    """Build ``pbbp2.Header`` and ``pbbp2.Frame`` once, on first use (no work at import)."""
    fdp = descriptor_pb2.FieldDescriptorProto
    req, opt, rep = fdp.LABEL_REQUIRED, fdp.LABEL_OPTIONAL, fdp.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(
        name="rudder/pbbp2.proto", package="pbbp2", syntax="proto2"
    )
    header = file.message_type.add(name="Header")
    header.field.extend(
        [
            _field("key", 1, fdp.TYPE_STRING, req),
            _field("value", 2, fdp.TYPE_STRING, req),
        ]
    )
    frame = file.message_type.add(name="Frame")
    frame.field.extend(
        [
            _field("SeqID", 1, fdp.TYPE_UINT64, req),
            _field("LogID", 2, fdp.TYPE_UINT64, req),
            _field("service", 3, fdp.TYPE_INT32, req),
            _field("method", 4, fdp.TYPE_INT32, req),
            _field("headers", 5, fdp.TYPE_MESSAGE, rep, ".pbbp2.Header"),
            _field("payload_encoding", 6, fdp.TYPE_STRING, opt),
            _field("payload_type", 7, fdp.TYPE_STRING, opt),
            _field("payload", 8, fdp.TYPE_BYTES, opt),
            _field("LogIDNew", 9, fdp.TYPE_STRING, opt),
        ]
    )
    # A private pool: the SDK's generated module registers the same names in the default pool.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    frame_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("pbbp2.Frame"))
    header_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("pbbp2.Header"))
    return header_cls, frame_cls


def encode_frame(frame: Frame) -> bytes:
    if not 0 <= frame.seq_id <= _UINT64_MAX or not 0 <= frame.log_id <= _UINT64_MAX:
        raise ValueError("SeqID and LogID are uint64")
    if (
        not _INT32_MIN <= frame.service <= _INT32_MAX
        or not _INT32_MIN <= frame.method <= _INT32_MAX
    ):
        raise ValueError("service and method are int32")
    _, frame_cls = _message_classes()
    msg = frame_cls()
    # proto2 required fields: always set, even to 0 (the node SDK throws if one is missing).
    msg.SeqID = frame.seq_id
    msg.LogID = frame.log_id
    msg.service = frame.service
    msg.method = int(frame.method)
    for key, value in frame.headers:
        h = msg.headers.add()
        h.key = key
        h.value = value
    if frame.payload_encoding is not None:
        msg.payload_encoding = frame.payload_encoding
    if frame.payload_type is not None:
        msg.payload_type = frame.payload_type
    if frame.payload is not None:
        msg.payload = frame.payload
    if frame.log_id_new is not None:
        msg.LogIDNew = frame.log_id_new
    data: bytes = msg.SerializeToString()
    return data


def decode_frame(data: bytes) -> Frame:
    _, frame_cls = _message_classes()
    msg = frame_cls()
    try:
        msg.ParseFromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError / RuntimeWarning types
        raise FrameDecodeError(str(exc)) from exc
    if not msg.IsInitialized():
        raise FrameDecodeError(
            "missing required fields: " + ", ".join(msg.FindInitializationErrors())
        )
    return Frame(
        seq_id=msg.SeqID,
        log_id=msg.LogID,
        service=msg.service,
        method=msg.method,
        headers=[(h.key, h.value) for h in msg.headers],
        payload_encoding=msg.payload_encoding if msg.HasField("payload_encoding") else None,
        payload_type=msg.payload_type if msg.HasField("payload_type") else None,
        payload=msg.payload if msg.HasField("payload") else None,
        log_id_new=msg.LogIDNew if msg.HasField("LogIDNew") else None,
    )


def ping_frame(service_id: int) -> Frame:
    """The client's keep-alive: CONTROL, SeqID = LogID = 0, one header ``type=ping``."""
    return Frame(service=service_id, method=FrameMethod.CONTROL, headers=[(HEADER_TYPE, "ping")])


def fragment_payload(payload: bytes, max_size: int) -> Iterator[tuple[int, int, bytes]]:
    """Split a DATA payload into ``(sum, seq, chunk)`` parts of at most ``max_size`` bytes."""
    if max_size <= 0:
        raise ValueError("max_size must be positive")
    chunks = [payload[i : i + max_size] for i in range(0, len(payload), max_size)] or [b""]
    for seq, chunk in enumerate(chunks):
        yield len(chunks), seq, chunk


class FragmentAssembler:
    """Reassemble DATA payloads split over several frames with ``sum``/``seq`` headers.

    Parts are buffered by the ``message_id`` header; an incomplete set is dropped after
    ``ttl`` seconds (the official SDKs keep them 5 s).
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self._ttl = ttl
        self._parts: dict[str, tuple[float, list[bytes | None]]] = {}

    def __len__(self) -> int:
        return len(self._parts)

    def add(self, frame: Frame, now: float | None = None) -> bytes | None:
        """Return the whole payload once complete (at once for unfragmented frames), else None."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        total = _int_header(frame, HEADER_SUM, default=1)
        payload = frame.payload or b""
        if total <= 1:
            return payload
        if total > MAX_FRAGMENTS:
            raise FrameDecodeError(f"fragment sum {total} is over the limit of {MAX_FRAGMENTS}")
        seq = _int_header(frame, HEADER_SEQ, default=0)
        if not 0 <= seq < total:
            raise FrameDecodeError(f"fragment seq {seq} outside 0..{total - 1}")
        key = frame.header(HEADER_MESSAGE_ID) or ""
        started, slots = self._parts.get(key, (now, [None] * total))
        if len(slots) != total:
            slots = [None] * total
        slots[seq] = payload
        if any(part is None for part in slots):
            self._parts[key] = (started, slots)
            return None
        self._parts.pop(key, None)
        return b"".join(_present(slots))

    def _expire(self, now: float) -> None:
        stale = [k for k, (started, _) in self._parts.items() if now - started > self._ttl]
        for k in stale:
            del self._parts[k]


def _present(parts: Sequence[bytes | None]) -> Iterator[bytes]:
    for part in parts:
        if part is not None:
            yield part


def _int_header(frame: Frame, key: str, default: int) -> int:
    raw = frame.header(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise FrameDecodeError(f"header {key}={raw!r} is not an integer") from exc
