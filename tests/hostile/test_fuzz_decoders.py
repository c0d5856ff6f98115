"""Hypothesis against every decoder that sees bytes from outside: frames, fragments, events,
webhook bodies. Each must answer with a value or its one documented exception type, never
anything else, and the long-connection client must log what it drops.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rudder.feishu.events import EventError, InboundEvent, parse_event
from rudder.feishu.frames import (
    MAX_FRAGMENTS,
    FragmentAssembler,
    Frame,
    FrameDecodeError,
    FrameMethod,
    decode_frame,
    encode_frame,
)
from rudder.feishu.webhook_codec import (
    WebhookChallenge,
    WebhookEvent,
    WebhookRejected,
    encrypt,
    parse_webhook,
    sign,
)
from tests.hostile.conftest import count

# Bounded: the whole module runs in a few seconds and never reuses a stored failing example
# from another machine's run.
FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

_text = st.text(max_size=40)
_uint64 = st.integers(0, 2**64 - 1)
_int32 = st.integers(-(2**31), 2**31 - 1)
_headers = st.lists(st.tuples(_text, _text), max_size=6)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    return Frame(
        seq_id=draw(_uint64),
        log_id=draw(_uint64),
        service=draw(_int32),
        method=draw(st.sampled_from([0, 1]) | _int32),
        headers=draw(_headers),
        payload_encoding=draw(st.none() | _text),
        payload_type=draw(st.none() | _text),
        payload=draw(st.none() | st.binary(max_size=200)),
        log_id_new=draw(st.none() | _text),
    )


def _decode(data: bytes) -> Frame | None:
    try:
        return decode_frame(data)
    except FrameDecodeError:
        return None


# -- frames ------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_frame_decode_error(data: bytes) -> None:
    count("fuzz cases: frame decoder")
    _decode(data)


@FUZZ
@given(frames(), st.data())
def test_mutated_frames_decode_or_raise_frame_decode_error(
    frame: Frame, data: st.DataObject
) -> None:
    """A valid frame with bytes flipped, cut or spliced: closer to real corruption than noise."""
    count("fuzz cases: frame decoder")
    raw = bytearray(encode_frame(frame))
    assert decode_frame(bytes(raw)) == frame  # the unmutated frame round-trips
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[at:]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    _decode(bytes(raw))


def test_huge_and_nested_payloads_stay_opaque_bytes() -> None:
    big = b"x" * (4 << 20)
    deep = b"[" * 100_000
    for payload in (big, deep):
        frame = Frame(method=FrameMethod.DATA, headers=[("type", "event")], payload=payload)
        assert decode_frame(encode_frame(frame)).payload == payload
    count("fuzz cases: frame decoder", 2)


# -- fragment reassembly -----------------------------------------------------------------------

_numberish = st.one_of(
    st.integers(-5, 12).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", " 3", "0x2", "1e3", "٣", "NaN", "9" * 5000]),
    _text,
)


@st.composite
def fragments(draw: st.DrawFn) -> Frame:
    headers: list[tuple[str, str]] = [("type", "event")]
    if draw(st.booleans()):
        headers.append(("message_id", draw(st.sampled_from(["m1", "m2", ""]) | _text)))
    if draw(st.booleans()):
        headers.append(("sum", draw(_numberish)))
    if draw(st.booleans()):
        headers.append(("seq", draw(_numberish)))
    return Frame(method=FrameMethod.DATA, headers=headers, payload=draw(st.binary(max_size=32)))


@FUZZ
@given(st.lists(fragments(), max_size=30), st.lists(st.floats(0, 2), max_size=30))
def test_fragment_reassembly_never_raises_anything_else(
    parts: list[Frame], steps: list[float]
) -> None:
    assembler = FragmentAssembler(ttl=1.0)
    now = 1000.0
    for i, frame in enumerate(parts):
        count("fuzz cases: fragment reassembly")
        now += steps[i] if i < len(steps) else 0.0
        try:
            out = assembler.add(frame, now=now)
        except FrameDecodeError:
            continue
        assert out is None or isinstance(out, bytes)
        # Pending sets are bounded by the frames seen, never by what a header claims.
        assert len(assembler) <= i + 1


def test_a_huge_fragment_count_is_refused_without_allocating_it() -> None:
    assembler = FragmentAssembler()
    frame = Frame(
        method=FrameMethod.DATA,
        headers=[("message_id", "m"), ("sum", str(10**12)), ("seq", "0")],
        payload=b"x",
    )
    with pytest.raises(FrameDecodeError, match="over the limit"):
        assembler.add(frame)
    assert len(assembler) == 0
    ok = Frame(
        method=FrameMethod.DATA,
        headers=[("message_id", "m"), ("sum", str(MAX_FRAGMENTS)), ("seq", "0")],
    )
    assert assembler.add(ok) is None and len(assembler) == 1
    count("fuzz cases: fragment reassembly", 2)


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 40), st.randoms(use_true_random=False))
def test_shuffled_fragments_reassemble_exactly(payload: bytes, size: int, rnd: Any) -> None:
    from rudder.feishu.frames import fragment_payload

    count("fuzz cases: fragment reassembly")
    parts = [
        Frame(
            method=FrameMethod.DATA,
            headers=[("message_id", "m"), ("sum", str(total)), ("seq", str(seq))],
            payload=chunk,
        )
        for total, seq, chunk in fragment_payload(payload, size)
    ]
    rnd.shuffle(parts)
    assembler = FragmentAssembler()
    results = [assembler.add(f) for f in parts]
    assert results[-1] == payload and all(r is None for r in results[:-1])
    assert len(assembler) == 0


# -- event models ------------------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
# Values of the wrong type, or of the right type and absurd size, for any field.
_huge = st.builds(
    lambda c, n: c * n,
    st.sampled_from(["x", "\u00e9", "\U0001f600", "\x00"]),
    st.integers(10_000, 300_000),
)
_wild = st.one_of(_json, _huge)


def _post_content(draw: st.DrawFn) -> str:
    element = st.fixed_dictionaries(
        {
            "tag": st.sampled_from(["text", "a", "at", "emotion", "code_block", "md", "hr", "img"])
            | _wild
        },
        optional={
            "text": _wild,
            "href": _wild,
            "user_id": st.sampled_from(["all", "@_all", "@_user_1", "ou_x"]) | _wild,
            "user_name": _wild,
            "emoji_type": _wild,
            "language": _wild,
        },
    )
    paragraphs = st.lists(st.lists(element | _wild, max_size=4) | _wild, max_size=4)
    root = {"title": draw(_wild), "content": draw(paragraphs)}
    wrapped = draw(
        st.sampled_from([root, {"zh_cn": root}, {"post": {"en_us": root}}, {"post": root}])
    )
    return json.dumps(wrapped)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    def maybe(value: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(value, _wild))

    message = {
        "message_id": maybe(st.just("om_1")),
        "chat_id": maybe(st.just("oc_1")),
        "chat_type": maybe(st.sampled_from(["p2p", "group"])),
        "message_type": maybe(st.sampled_from(["text", "post", "image"])),
        "content": maybe(
            st.one_of(
                st.builds(lambda t: json.dumps({"text": t}), _wild),
                st.just("{}"),
                st.text(max_size=50),
            )
        ),
        "mentions": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"key": _wild, "id": st.fixed_dictionaries({"open_id": _wild}) | _wild}
                ),
                max_size=3,
            )
        ),
    }
    if draw(st.booleans()):
        message["content"] = _post_content(draw)
        message["message_type"] = "post"
    event = {
        "sender": maybe(
            st.fixed_dictionaries(
                {
                    "sender_id": st.fixed_dictionaries({"open_id": _wild}) | _wild,
                    "sender_type": _wild,
                }
            )
        ),
        "message": {
            k: v for k, v in message.items() if draw(st.booleans()) or k in ("message_id",)
        },
    }
    header = {
        "event_id": maybe(st.just("ev_1")),
        "event_type": maybe(
            st.sampled_from(["im.message.receive_v1", "im.chat.member.bot.added_v1"])
        ),
        "app_id": maybe(st.just("cli_1")),
        "token": maybe(st.just("t")),
    }
    envelope: dict[str, Any] = {
        "schema": maybe(st.just("2.0")),
        "header": {k: v for k, v in header.items() if draw(st.integers(0, 5))},
        "event": maybe(st.just(event)),
    }
    return {k: v for k, v in envelope.items() if draw(st.integers(0, 7))}


def _parse(payload: bytes | dict[str, Any]) -> InboundEvent | None:
    try:
        return parse_event(payload)
    except EventError as exc:
        assert str(exc)  # the reason is what gets logged; it must say something
        return None


@FUZZ
@given(envelopes())
def test_event_envelopes_parse_or_raise_event_error(envelope: dict[str, Any]) -> None:
    count("fuzz cases: event models")
    event = _parse(envelope)
    if event is not None:
        assert isinstance(event.event_id, str) and isinstance(event.event_type, str)
    _parse(json.dumps(envelope).encode())


@FUZZ
@given(st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode())))
def test_event_bytes_parse_or_raise_event_error(raw: bytes) -> None:
    count("fuzz cases: event models")
    _parse(raw)


def test_deeply_nested_event_bytes_raise_event_error() -> None:
    with pytest.raises(EventError):
        parse_event(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)


def test_deeply_nested_message_content_is_not_text() -> None:
    envelope = {
        "schema": "2.0",
        "header": {"event_id": "e", "event_type": "im.message.receive_v1"},
        "event": {
            "sender": {"sender_id": {"open_id": "ou_1"}},
            "message": {"message_id": "om", "chat_id": "oc", "content": "[" * 50_000},
        },
    }
    event = parse_event(envelope)
    assert event.message is not None and event.message.text is None


# -- webhook bodies ----------------------------------------------------------------------------

KEY, TOKEN = "k3y", "t0ken"


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        _json.map(lambda v: json.dumps(v).encode()),
        envelopes().map(
            lambda e: json.dumps({"encrypt": encrypt(KEY, json.dumps(e).encode())}).encode()
        ),
        st.text(max_size=60).map(lambda t: json.dumps({"encrypt": t}).encode()),
    ),
    st.dictionaries(
        st.sampled_from(
            ["X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature", "x-other"]
        ),
        st.text(max_size=70),
        max_size=4,
    ),
    st.booleans(),
)
def test_webhook_bodies_decide_without_raising(
    raw: bytes, headers: dict[str, str], sign_it: bool
) -> None:
    count("fuzz cases: webhook codec")
    if sign_it:
        ts = str(int(time.time()))
        headers = {
            "X-Lark-Request-Timestamp": ts,
            "X-Lark-Request-Nonce": "n",
            "X-Lark-Signature": sign(ts, "n", KEY, raw),
        }
    result = parse_webhook(
        raw, headers, encrypt_key=KEY, verification_token=TOKEN, max_age_s=3600, now=time.time()
    )
    assert isinstance(result, WebhookChallenge | WebhookEvent | WebhookRejected)
    if isinstance(result, WebhookRejected):
        assert result.status in (400, 401, 413) and result.reason
    elif not sign_it:
        # Without a valid signature only a url_verification carrying our token gets through.
        assert isinstance(result, WebhookChallenge)


def test_deep_json_webhook_body_is_a_400_not_a_crash() -> None:
    result = parse_webhook(
        b"[" * 100_000, {}, encrypt_key=KEY, verification_token=TOKEN, max_age_s=None, now=0
    )
    assert isinstance(result, WebhookRejected) and result.status == 400
    count("fuzz cases: webhook codec")


# -- the long-connection client logs what it drops ---------------------------------------------


def test_undecodable_frames_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The drop is visible: one warning naming the app and the decoder's reason."""
    from rudder.feishu.longconn import LongConnection
    from rudder.feishu.regions import Region

    conn = LongConnection(
        "cli_fuzz",
        "s",
        Region.FEISHU,
        http=None,  # type: ignore[arg-type]  # never used: no connect happens here
        on_event=None,  # type: ignore[arg-type]
    )
    with caplog.at_level(logging.WARNING, logger="rudder.feishu.longconn"):
        conn._on_frame(None, b"\xff\x00garbage")  # type: ignore[arg-type]
        bad_sum = Frame(method=FrameMethod.DATA, headers=[("sum", "many")], payload=b"{}")
        conn._on_frame(None, encode_frame(bad_sum))  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    assert any("cli_fuzz: undecodable frame" in m for m in messages), messages
    assert any("cli_fuzz: bad fragment" in m and "sum" in m for m in messages), messages
    assert conn.state.events == 0
