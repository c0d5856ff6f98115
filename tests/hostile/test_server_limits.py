"""Memory and connections of a running Rudder (`rudder start`, a process of its own), attacked
from outside: huge bodies, huge heads, and slowloris connections that never finish a request.

Bodies come from one reused 64 KiB buffer over a raw socket, so the test allocates nothing; the
server must answer 413 long before the body ends, and its resident memory must stay flat.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from rudder.http_limits import HEAD_TIMEOUT_S, HEADER_LIMIT
from tests.conftest import TEST_SECRETS_KEY
from tests.hostile.conftest import count
from tests.hostile.process import RudderProcess, rudder_env, rudder_start

MiB = 1 << 20
CHUNK = b"x" * (64 << 10)
ATTACK_BYTES = 200 * MiB
# Socket buffers on both sides hold a few MiB before a refusal is noticed; reading the whole
# body would be ATTACK_BYTES.
MAX_SENT_BEFORE_REFUSAL = 32 * MiB
MAX_RSS_GROWTH_KIB = 30 * 1024


@pytest.fixture(scope="module")
def rudder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RudderProcess]:
    home = tmp_path_factory.mktemp("limits") / "home"
    with rudder_start(rudder_env(home, RUDDER_SECRETS_KEY=TEST_SECRETS_KEY)) as process:
        yield process
    # Refusals are answers, not crashes.
    assert "Traceback" not in "".join(process.output), "".join(process.output)[-5000:]


def _read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (or goes quiet for `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _status(response: bytes) -> int | None:
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response.split(b" ", 2)[1])


def _stream_attack(
    port: int,
    path: str,
    *,
    chunked: bool,
    total: int = ATTACK_BYTES,
    method: str = "POST",
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    """Send `total` bytes of body to `path` as fast as the server takes them, stopping when it
    answers. Answers the bytes of body sent and the server's response."""
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % total
    head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n%s\r\n\r\n" % (
        method.encode(),
        path.encode(),
        content_type.encode(),
        framing,
    )
    frame = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed) while the body was still coming
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(CHUNK)
        return sent, _read_response(sock)


FORM = "application/x-www-form-urlencoded"
# (method, path, chunked, content type, the answer): each 200 MiB.
ATTACKS = [
    ("POST", "/api/integrations/feishu/does-not-exist/webhook", False, "application/json", 413),
    ("POST", "/api/integrations/feishu/does-not-exist/webhook", True, "application/json", 413),
    ("POST", "/api/auth/login", False, "application/json", 413),
    ("POST", "/api/auth/login", True, "application/json", 413),
    ("POST", "/api/orgs", True, "application/json", 413),
    ("POST", "/switch-org", True, FORM, 413),  # a page's form
    ("POST", "/switch-org", False, FORM, 413),
    # Routes that take no body answer at once, and the rest of the body is not read either.
    ("GET", "/api/orgs", True, "application/json", 200),
    ("POST", "/api/auth/logout", True, "application/json", 204),
]


def test_huge_bodies_are_refused_before_they_are_read(rudder: RudderProcess) -> None:
    with httpx.Client(base_url=rudder.url, timeout=20) as client:
        for _ in range(3):  # warm up the paths the attacks take
            assert client.get("/api/orgs").status_code == 200
            _stream_attack(rudder.port, ATTACKS[0][1], chunked=True, total=2 * MiB)
    before = rudder.rss_kib()
    problems = []
    for method, path, chunked, content_type, answer in ATTACKS:
        sent, response = _stream_attack(
            rudder.port, path, chunked=chunked, method=method, content_type=content_type
        )
        count("oversized bodies sent (200 MiB each)")
        status = _status(response)
        named = answer != 413 or b"over the 1 MiB limit" in response
        if status == answer and named and sent < MAX_SENT_BEFORE_REFUSAL:
            count("oversized bodies answered before they were read")
        else:
            problems.append(f"{method} {path} chunked={chunked}: {status} after {sent // MiB} MiB")
    grown = rudder.rss_kib() - before
    with httpx.Client(base_url=rudder.url, timeout=20) as client:
        assert client.get("/api/orgs").status_code == 200  # and it still serves
    assert not problems, problems
    assert grown < MAX_RSS_GROWTH_KIB, f"RSS grew {grown // 1024} MiB"


def test_a_body_within_its_limit_is_still_read(rudder: RudderProcess) -> None:
    """The cap is not a refusal of everything: 900 KiB of JSON reaches the route (its 422)."""
    with httpx.Client(base_url=rudder.url, timeout=20) as client:
        org = client.get("/api/orgs").json()[0]
        body = b'{"name": "' + b"n" * (900 << 10) + b'"}'
        r = client.post(
            f"/api/orgs/{org['id']}/agents",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"] == "invalid"


def _head_attack(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed before all of it arrived
        return _read_response(sock)


HEADS = {
    "one 1 MB header": b"GET /api/orgs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    + b"a" * MiB
    + b"\r\n\r\n",
    "5,000 headers": b"GET /api/orgs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(5000))
    + b"\r\n",
    "a 100 KB URL": b"GET /api/orgs?q=" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
}


@pytest.mark.parametrize("name", list(HEADS))
def test_an_oversized_request_head_is_refused(rudder: RudderProcess, name: str) -> None:
    assert len(HEADS[name]) > HEADER_LIMIT
    response = _head_attack(rudder.port, HEADS[name])
    count("oversized request heads sent")
    assert _status(response) == 431, response[:300]
    assert b"32 KiB" in response
    count("oversized request heads refused")
    # A head just under the limit is still served.
    fine = b"GET /api/orgs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Pad: %s\r\n\r\n"
    assert _status(_head_attack(rudder.port, fine % (b"p" * (HEADER_LIMIT - 200)))) == 200


def test_slowloris_connections_are_closed_in_bounded_time(rudder: RudderProcess) -> None:
    """50 connections that never finish a request: a head sent a byte at a time, a connection
    that sends nothing, a body that stops. Each is closed within ~HEAD_TIMEOUT_S while ordinary
    requests keep being answered."""
    bound_s = 2 * HEAD_TIMEOUT_S
    opened: dict[socket.socket, tuple[str, float]] = {}
    for i in range(50):
        sock = socket.create_connection(("127.0.0.1", rudder.port), timeout=5)
        sock.setblocking(False)
        kind = ("trickle", "silent", "stalled body")[i % 3]
        if kind == "stalled body":
            sock.send(
                b"POST /api/orgs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"name": '
            )
        opened[sock] = (kind, time.monotonic())
        count("slowloris connections opened")
    closed_after: dict[str, list[float]] = {"trickle": [], "silent": [], "stalled body": []}
    answers: list[float] = []
    header = b"X-Slow: " + b"a" * 10_000
    position = 0
    deadline = time.monotonic() + bound_s + 5
    next_probe = time.monotonic()
    with httpx.Client(base_url=rudder.url, timeout=5) as client:
        while opened and time.monotonic() < deadline:
            readable, _, _ = select.select(list(opened), [], [], 0.25)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:  # closed by the server
                    kind, since = opened.pop(sock)
                    closed_after[kind].append(time.monotonic() - since)
                    sock.close()
            for sock, (kind, _) in opened.items():
                if kind == "trickle":
                    if position == 0:
                        sock.send(b"GET /api/orgs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    else:
                        try:
                            sock.send(header[position % len(header) : position % len(header) + 1])
                        except (BrokenPipeError, ConnectionResetError):
                            pass  # noticed as closed on the next round
            position += 1
            if time.monotonic() >= next_probe:
                started = time.monotonic()
                assert client.get("/api/orgs").status_code == 200
                answers.append(time.monotonic() - started)
                next_probe = started + 1
    for sock in opened:
        sock.close()
    times = [t for ts in closed_after.values() for t in ts]
    count("slowloris connections closed in time", sum(t <= bound_s for t in times))
    still_open = {kind for kind, _ in opened.values()}
    assert not opened, (
        f"{len(opened)} connections still open after {bound_s + 5:.0f} s: {still_open}"
    )
    assert max(times) <= bound_s, closed_after
    assert min(times) >= HEAD_TIMEOUT_S * 0.9, closed_after  # not closed before their deadline
    assert answers and max(answers) < 3, answers
    print("slowloris closed after (s):", {k: (min(v), max(v)) for k, v in closed_after.items()})
