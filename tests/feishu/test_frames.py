"""The pbbp2.Frame codec: golden bytes, round trips and fragment reassembly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rudder.feishu.frames import (
    HEADER_MESSAGE_ID,
    HEADER_SEQ,
    HEADER_SUM,
    FragmentAssembler,
    Frame,
    FrameDecodeError,
    FrameMethod,
    decode_frame,
    encode_frame,
    fragment_payload,
    ping_frame,
)

# The client ping of lark-oapi 1.7.5 for service 33554678 (reference §8.3).
GOLDEN_PING = bytes.fromhex(
    "08 00 10 00 18 f6 81 80 10 20 00 2a 0c 0a 04 74 79 70 65 12 04 70 69 6e 67"
)

text = st.text(max_size=20)
frames = st.builds(
    Frame,
    seq_id=st.integers(0, 2**64 - 1),
    log_id=st.integers(0, 2**64 - 1),
    service=st.integers(-(2**31), 2**31 - 1),
    method=st.sampled_from([FrameMethod.CONTROL, FrameMethod.DATA]),
    headers=st.lists(st.tuples(text, text), max_size=6),
    payload_encoding=st.none() | text,
    payload_type=st.none() | text,
    payload=st.none() | st.binary(max_size=300),
    log_id_new=st.none() | text,
)


def test_client_ping_matches_the_official_sdk_bytes() -> None:
    assert encode_frame(ping_frame(33554678)) == GOLDEN_PING


def test_golden_ping_decodes_to_a_control_ping() -> None:
    frame = decode_frame(GOLDEN_PING)
    assert (frame.seq_id, frame.log_id, frame.service, frame.method) == (0, 0, 33554678, 0)
    assert frame.header("type") == "ping"
    assert frame.payload is None


def test_bytes_are_readable_by_the_official_generated_class() -> None:
    from lark_oapi.ws.pb.pbbp2_pb2 import Frame as SdkFrame

    ours = Frame(
        seq_id=7,
        log_id=9,
        service=3,
        method=FrameMethod.DATA,
        headers=[("type", "event")],
        payload=b"{}",
    )
    theirs = SdkFrame()
    theirs.ParseFromString(encode_frame(ours))
    assert (theirs.SeqID, theirs.LogID, theirs.service, theirs.method) == (7, 9, 3, 1)
    assert [(h.key, h.value) for h in theirs.headers] == [("type", "event")]
    assert decode_frame(theirs.SerializeToString()) == ours


@given(frames)
def test_round_trip(frame: Frame) -> None:
    assert decode_frame(encode_frame(frame)) == frame


@given(st.binary(max_size=2000), st.integers(1, 300), st.randoms())
def test_fragments_reassemble_in_any_order(payload: bytes, size: int, rnd: object) -> None:
    parts = [
        Frame(
            method=FrameMethod.DATA,
            headers=[(HEADER_MESSAGE_ID, "m1"), (HEADER_SUM, str(total)), (HEADER_SEQ, str(seq))],
            payload=chunk,
        )
        for total, seq, chunk in fragment_payload(payload, size)
    ]
    rnd.shuffle(parts)  # type: ignore[attr-defined]
    assembler = FragmentAssembler()
    results = [assembler.add(decode_frame(encode_frame(p)), now=0.0) for p in parts]
    assert results[-1] == payload
    assert all(r is None for r in results[:-1])
    assert len(assembler) == 0


def test_incomplete_fragments_expire() -> None:
    assembler = FragmentAssembler(ttl=5.0)
    first = Frame(
        method=1,
        headers=[(HEADER_MESSAGE_ID, "m"), (HEADER_SUM, "2"), (HEADER_SEQ, "0")],
        payload=b"a",
    )
    assert assembler.add(first, now=0.0) is None
    late = Frame(
        method=1,
        headers=[(HEADER_MESSAGE_ID, "m"), (HEADER_SUM, "2"), (HEADER_SEQ, "1")],
        payload=b"b",
    )
    assert assembler.add(late, now=6.0) is None  # the first half was dropped after 5 s


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x08\x01", b"\x2a\x05\x0a"])
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(FrameDecodeError):
        decode_frame(data)


def test_bad_fragment_headers_are_decode_errors() -> None:
    frame = Frame(method=1, headers=[(HEADER_SUM, "2"), (HEADER_SEQ, "5")], payload=b"x")
    with pytest.raises(FrameDecodeError):
        FragmentAssembler().add(frame)
    with pytest.raises(FrameDecodeError):
        FragmentAssembler().add(Frame(method=1, headers=[(HEADER_SUM, "many")]))
