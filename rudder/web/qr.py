"""The authorization link as a QR code: inline SVG for pages (no JavaScript), text for terminals."""

from __future__ import annotations

import io

import qrcode
import qrcode.constants
import qrcode.image.svg


def qr_svg(data: str) -> str:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    # Drop the XML prolog so the SVG can sit inline in the page.
    return svg[svg.index("<svg") :]


def qr_text(data: str) -> str:
    """The code as text for a terminal: each row of characters holds two rows of modules.

    Low error correction and a one-module border keep a ~70-character link 35 columns wide.
    """
    code = qrcode.QRCode(border=1, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()
