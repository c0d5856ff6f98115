"""The terminal QR code: a short Rudder link that fits 40 columns and leads to the authorization
page while the setup is pending, and says why once it has ended."""

from __future__ import annotations

import numpy as np
import zxingcpp

from rudder.web.pages_connect import short_setup_link
from rudder.web.qr import qr_text
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for

# Each character holds two rows of modules; with invert=True the drawn blocks are light.
_TOP = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0), "\xa0": (0, 0)}


def _decode(text: str) -> str:
    rows: list[list[int]] = []
    for line in text.splitlines():
        if not line:
            continue
        top, bottom = [], []
        for ch in line:
            t, b = _TOP[ch]
            top.append(t)
            bottom.append(b)
        rows += [top, bottom]
    light = np.array(rows, dtype=np.uint8) * 255
    image = np.pad(np.kron(light, np.ones((8, 8), dtype=np.uint8)), 32, constant_values=255)
    found = zxingcpp.read_barcodes(image)
    assert found, "no QR code found in the terminal text"
    return str(found[0].text)


def test_terminal_code_fits_40_columns_and_decodes_to_the_short_link() -> None:
    link = short_setup_link("https://rudder.example.com", "0b7c1d2e-3f4a-4b5c-8d9e-0f1a2b3c4d5e")
    text = qr_text(link)
    assert max(len(line) for line in text.splitlines()) <= 40
    assert _decode(text) == link


async def test_short_link_redirects_while_pending_and_explains_when_ended(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    setup = (
        await rig.client.post(
            f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "feishu"}
        )
    ).json()
    link = short_setup_link("http://rudder.test", setup["setup_id"])
    assert _decode(qr_text(link)) == link
    r = await rig.client.get(link)
    assert r.status_code == 307 and r.headers["location"] == setup["verification_url"]

    await rig.control("POST", f"/registrations/{setup['user_code']}/deny")

    async def denied() -> bool:
        body = (await rig.client.get(f"/api/integration-setups/{setup['setup_id']}")).json()
        return bool(body["status"] == "denied")

    await wait_for(denied, timeout=15)
    r = await rig.client.get(link)
    assert r.status_code == 410 and "denied" in r.text and "Integrations tab" in r.text
    r = await rig.client.get(short_setup_link("http://rudder.test", "no-such-setup"))
    assert r.status_code == 404 and "no such setup" in r.text
