"""The web console's static files, served by the API app at `/console` (no other server).

The files are public, like any page's script: they hold no data and no secret. Everything they
show comes from the API's own `/product` routes, called by the browser with the key the user
entered (kept in the tab's sessionStorage only), so the console can do nothing the API would
refuse. Every answer here carries a strict Content-Security-Policy: scripts, styles and
connections from this origin only, no inline script or style, no framing, no plugins, and
Trusted Types required, so a memory's text can never run as markup (the scripts only ever set
`textContent`).

Files are read once from the package folder `console/` and kept in memory (a few tens of KB); a
path that is not one of them is a 404, so nothing outside the folder can be named.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

ASSETS = Path(__file__).resolve().parent / "console"
PREFIX = "/console"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # Revalidated on every load: an upgraded server never runs with a stale script.
    "Cache-Control": "no-cache",
}


@cache
def assets() -> dict[str, tuple[bytes, str]]:
    """Every file of the console folder by its name: (bytes, content type)."""
    return {p.name: (p.read_bytes(), TYPES[p.suffix]) for p in sorted(ASSETS.iterdir()) if p.suffix in TYPES}


def asset(name: str) -> Response:
    found = assets().get(name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain", headers=HEADERS)
    body, media_type = found
    return Response(body, media_type=media_type, headers=HEADERS)


def install(app: FastAPI) -> None:
    """Add `GET /console` (the page) and `GET /console/{name}` (its files) to the app."""

    @app.get(PREFIX, include_in_schema=False, response_model=None)
    async def console_page() -> Response:
        return asset("index.html")

    # The name is read from the path here: a declared parameter costs FastAPI a pydantic.v1
    # import when the app is built (a cold start, BENCHMARKS.md).
    @app.get(PREFIX + "/{name}", include_in_schema=False, response_model=None)
    async def console_file(request: Request) -> Response:
        return asset(request.path_params["name"])
