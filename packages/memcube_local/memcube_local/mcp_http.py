"""The embedded server's MCP endpoint: memcube's MCP tools (`memcube_client.mcp_server`) over
streamable HTTP at `/mcp`, calling the same app's HTTP API in-process (an httpx ASGI transport).

Each MCP request acts as its own caller: its `Authorization` header is passed through to the API
unchanged, and the user it acts as is named by the `X-Memcube-User-Id` header or a `user_id`
query parameter of the MCP URL. The endpoint checks nothing itself: the API authenticates the
key, refuses a user the key may not act as, and checks every cube, as for any HTTP request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from starlette.routing import Route

if TYPE_CHECKING:
    from mcp.server.fastmcp import Context

    from memcube_client.mcp_server import Identity

log = logging.getLogger(__name__)

PATH = "/mcp"
USER_HEADER = "x-memcube-user-id"
USER_PARAM = "user_id"


def mount_mcp(app: FastAPI, *, host: str) -> bool:
    """Serve MCP at `/mcp` on `app` (False, with a warning, when the `mcp` package is missing).

    `host` is the interface the server listens on: on loopback the SDK's DNS-rebinding guard
    accepts only loopback Host and Origin headers (a web page cannot reach it through a
    rebound name); beyond loopback, keys are required (`memcube serve` refuses otherwise)."""
    try:
        from mcp.server.fastmcp.server import StreamableHTTPASGIApp

        from memcube_client.mcp_server import MemcubeApi, build_server
    except ImportError as exc:
        log.warning("MCP is not served at %s: the `mcp` package is missing (%s)", PATH, exc)
        return False
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://memcube", timeout=60.0)
    server = build_server(MemcubeApi(http), identity_of_request, host=host)
    server.streamable_http_app()  # creates the session manager the route hands requests to
    manager = server.session_manager
    app.router.routes.append(Route(PATH, StreamableHTTPASGIApp(manager), include_in_schema=False))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(outer: FastAPI) -> AsyncIterator[Any]:
        try:
            async with manager.run(), inner(outer) as state:
                yield state
        finally:
            await http.aclose()

    app.router.lifespan_context = lifespan
    return True


def identity_of_request(ctx: Context[Any, Any, Any]) -> Identity:
    """The caller of one MCP request: its Authorization header, and the user it names."""
    from mcp.server.fastmcp.exceptions import ToolError

    from memcube_client.mcp_server import Identity

    request = ctx.request_context.request
    if request is None:
        raise ToolError("this MCP endpoint serves HTTP requests only")
    header = request.headers.get(USER_HEADER)
    param = request.query_params.get(USER_PARAM)
    if header and param and header != param:
        raise ToolError(f"the {USER_HEADER} header ({header!r}) and ?{USER_PARAM}= ({param!r}) name different users")
    user_id = header or param
    if not user_id:
        raise ToolError(
            f"name the user the tools act as: an {USER_HEADER} header, or ?{USER_PARAM}=<id> in the MCP URL"
        )
    return Identity(user_id, request.headers.get("authorization"))
