"""The authorization link as a QR code, rendered to inline SVG on the server (no JavaScript)."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg


def qr_svg(data: str) -> str:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    # Drop the XML prolog so the SVG can sit inline in the page.
    return svg[svg.index("<svg") :]
