"""The FastAPI app: the error mapping, the routers (`routes.product` for MemOS's `/product` API,
`routes.hosted` for the hosted MemOS API, under its SDK's path and at the root) and the OpenAPI
components their bodies name. No Lambda imports here (`handler` adds Mangum)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from memcube.wiring import Container
from memcube_api.errors import install
from memcube_api.routes import chat, edits, hosted, product, reads
from memcube_api.routing import document_schemas, include
from memcube_api.schemas.hosted import PREFIX


def create_app(
    container: Callable[[], Container], on_shutdown: Sequence[Callable[[], None]] = (), *, offload: bool = True
) -> FastAPI:
    """Build the app around a container factory (called per request; it caches itself).

    `on_shutdown` runs when the server shuts down gracefully (SIGTERM included): the embedded
    default stops its worker there, letting an in-flight add finish. Lambda runs no lifespan.
    `offload=False` runs blocking calls inline (the Lambda entry; see `deps.blocking`).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for hook in on_shutdown:
            await run_in_threadpool(hook)

    app = FastAPI(
        title="memcube",
        version="0.1.0",
        summary="MemOS-compatible memory service: add, task status, read back, search.",
        lifespan=lifespan,
        # A path with a trailing slash is 404, not a 307 whose Location is built from the Host header.
        redirect_slashes=False,
    )
    install(app)
    app.state.container = container
    app.state.offload = offload

    # No response model: inferring one from the annotation costs FastAPI a pydantic.v1 import.
    @app.get("/health", include_in_schema=False, response_model=None)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    include(app, product.router)
    include(app, reads.router)  # MemOS's other /product reads
    include(app, hosted.router)  # under the SDK's path
    include(app, hosted.router, strip=PREFIX, tags=(hosted.TAG_AT_ROOT,))  # for a base URL without it
    include(app, chat.product_router)
    include(app, chat.hosted_router)
    include(app, chat.hosted_router, strip=PREFIX, tags=(hosted.TAG_AT_ROOT,))
    include(app, edits.router)
    include(app, edits.hosted_router)
    include(app, edits.hosted_router, strip=PREFIX, tags=(hosted.TAG_AT_ROOT,))
    document_schemas(app)
    return app
