"""Local mode (no sign-in) reachable only from this machine: DNS rebinding, a bind to every
interface, and configuration picked up from variables that are not Rudder's.

Each attacks `rudder start` as a process of its own.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRETS_KEY
from tests.hostile.conftest import count
from tests.hostile.process import RudderProcess, rudder_command, rudder_env, rudder_start

PUBLIC = "http://rudder.test"
EVIL = "rebind.evil.example"
PROCESS_AGENT = {
    "name": "rebound",
    "runtime_type": "process",
    "runtime_config": {"command": "sh", "args": ["-c", "id"]},
}


@pytest.fixture(scope="module")
def rudder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RudderProcess]:
    home = tmp_path_factory.mktemp("local") / "home"
    env = rudder_env(home, RUDDER_SECRETS_KEY=TEST_SECRETS_KEY, RUDDER_PUBLIC_URL=PUBLIC)
    with rudder_start(env) as process:
        yield process


def test_a_rebound_host_is_refused_and_loopback_names_are_served(rudder: RudderProcess) -> None:
    """A page on rebind.evil.example, its name re-pointed at 127.0.0.1, talks to local mode."""
    port = rudder.port
    evil = {"Host": f"{EVIL}:{port}", "Origin": f"http://{EVIL}:{port}"}
    with httpx.Client(base_url=rudder.url, timeout=20) as client:
        org = client.get("/api/orgs").json()[0]
        agents_before = client.get(f"/api/orgs/{org['id']}/agents").json()
        attempts = [
            client.get("/api/orgs", headers={"Host": f"{EVIL}:{port}"}),
            client.get("/", headers={"Host": EVIL}),
            client.post(f"/api/orgs/{org['id']}/agents", json=PROCESS_AGENT, headers=evil),
            client.post(
                f"/api/orgs/{org['id']}/agents",
                json=PROCESS_AGENT,
                headers={
                    "Host": "127.0.0.1.evil.example",
                    "Origin": "http://127.0.0.1.evil.example",
                },
            ),
            client.get("/api/orgs", headers={"Host": f"localhost.{EVIL}:{port}"}),
        ]
        for r in attempts:
            count("DNS rebinding requests tried")
            assert r.status_code == 421, r.text
            assert r.json()["error"] == "misdirected_request"
            assert "loopback" in r.json()["detail"]
            count("DNS rebinding requests refused")
        assert client.get(f"/api/orgs/{org['id']}/agents").json() == agents_before

        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            f"[::1]:{port}",
            "127.0.0.2",
            "rudder.test",
        ):
            r = client.get("/api/orgs", headers={"Host": host})
            assert r.status_code == 200, (host, r.text)
            count("loopback and public-host requests answered")
        # Feishu posts the webhook to the public address; a stranger's Host is not refused
        # there either (the route checks its own signature and needs no Host).
        r = client.post(
            "/api/integrations/feishu/does-not-exist/webhook", content=b"{}", headers=evil
        )
        assert r.status_code == 404, r.text


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "0.0.0.0"], {}),
        (["--host", "::"], {}),
        (["--host", "192.0.2.10"], {}),
        ([], {"RUDDER_HOST": "0.0.0.0"}),
    ],
    ids=["--host 0.0.0.0", "--host ::", "--host 192.0.2.10", "RUDDER_HOST=0.0.0.0"],
)
def test_local_mode_refuses_to_listen_beyond_loopback(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    count("non-loopback binds tried in local mode")
    try:
        done = subprocess.run(
            rudder_command("start", "--port", "0", *args),
            env=rudder_env(tmp_path / "home", **env),
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"rudder start {' '.join(args)} kept running in local mode")
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    assert "RUDDER_DEPLOYMENT_MODE=authenticated" in output, output
    assert not (tmp_path / "home").exists()  # refused before anything was created
    count("non-loopback binds refused in local mode")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_only_rudder_variables_configure_it(tmp_path: Path) -> None:
    """HOME, HOST and PORT (in the environment or in .env) are the user's, not Rudder's."""
    home, cwd = tmp_path / "user", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    stray_port = _free_port()
    (cwd / ".env").write_text(f"PORT={stray_port}\nHOST=0.0.0.0\n")
    env = rudder_env(None, HOME=str(home), HOST="0.0.0.0", PORT=str(stray_port))
    count("variables outside RUDDER_* set", 5)  # HOME, HOST, PORT; HOST, PORT in .env
    with rudder_start(env, cwd=cwd) as rudder:
        assert rudder.url.startswith("http://127.0.0.1:"), rudder.url
        with httpx.Client(base_url=rudder.url, timeout=20) as client:
            assert client.get("/api/orgs").status_code == 200
    assert (home / ".rudder" / "rudder.db").exists()
    assert (home / ".rudder" / "secrets.key").exists()
    assert not (home / "rudder.db").exists() and not (home / "secrets.key").exists()

    # Where the CLI would look for Rudder: not at $HOST:$PORT either.
    done = subprocess.run(
        rudder_command("feishu", "connect", "--agent", "nobody", "--timeout", "1"),
        env=rudder_env(None, HOME=str(home), HOST=EVIL, PORT=str(stray_port)),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert EVIL not in output and str(stray_port) not in output and "0.0.0.0" not in output
    count("variables outside RUDDER_* ignored", 5)
