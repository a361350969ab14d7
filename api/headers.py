"""Security headers on every response, and no caching of API answers (they may carry personal data).

* ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` everywhere;
* ``Content-Security-Policy`` (:func:`content_security_policy`) everywhere unless the response sets its own: the
  pages keep a bearer token in ``sessionStorage``, so no script may run but the service's own files — no inline
  script, no ``eval``, no other origin. Pages have no inline ``<script>`` and no ``on...=`` handlers; the one page
  with an inline script (``/docs``, FastAPI's Swagger UI page) names it by hash (:func:`inline_script_hashes`).
  Inline *style attributes* stay allowed (``style-src-attr``): the pages colour legend swatches with them and
  Leaflet positions everything with them; ``<style>`` elements only if a template has them verbatim (by hash,
  :data:`TEMPLATE_STYLE_HASHES`: the coverage report, whose ``<style>`` the page /inspector/report copies into
  itself), other origins' styles not at all;
* ``Cache-Control: no-store`` on ``/api/`` answers that set no cache policy of their own, so masked
  household lists do not linger in browser or proxy caches. Tiles and static files keep their own policies.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send


TEMPLATES = Path(__file__).resolve().parent / "templates"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_INLINE_STYLE = re.compile(rb"<style>(.*?)</style>", re.DOTALL)


def _sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def inline_script_hashes(html: bytes) -> list[str]:
    """The base64 sha256 of every inline ``<script>`` (without attributes) of ``html``, for the policy."""
    return [_sha256(body) for body in _INLINE_SCRIPT.findall(html)]


def _template_style_hashes() -> tuple[str, ...]:
    """The hashes of the ``<style>`` blocks of the page templates; each must be plain text (no template
    expression), so that it is served exactly as hashed."""
    hashes = []
    for template in sorted(TEMPLATES.glob("*.html")):
        for body in _INLINE_STYLE.findall(template.read_bytes()):
            if b"{{" in body or b"{%" in body:
                raise ValueError(f"{template.name}: a <style> block must not hold template code (it is hashed)")
            hashes.append(_sha256(body))
    return tuple(hashes)


TEMPLATE_STYLE_HASHES = _template_style_hashes()


def content_security_policy(script_hashes: Iterable[str] = ()) -> str:
    """The policy: everything from this origin only; scripts also when their sha256 is in ``script_hashes``
    (base64, as :func:`inline_script_hashes` gives), ``<style>`` blocks when they are a template's
    (:data:`TEMPLATE_STYLE_HASHES`). Images may be ``data:`` URIs (Leaflet-Geoman's and Swagger UI's icons are, in
    their CSS)."""
    scripts = " ".join(["'self'", *(f"'sha256-{h}'" for h in script_hashes)])
    styles = " ".join(["'self'", *(f"'sha256-{h}'" for h in TEMPLATE_STYLE_HASHES)])
    return ("default-src 'self'; "
            f"script-src {scripts}; "
            f"style-src {styles}; style-src-elem {styles}; style-src-attr 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; font-src 'self'; worker-src 'self'; manifest-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
          (b"referrer-policy", b"no-referrer"), (b"content-security-policy", content_security_policy().encode()))


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in ALWAYS if h[0] not in present]
                if is_api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
