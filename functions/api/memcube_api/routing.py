"""The routers' route class: every route acts through `deps.acting` (so its caller is authenticated,
before its input is read, and its rate limit counted), and documents the input its dependencies
read.

Bodies and parameters are read by dependencies (`deps`), so FastAPI does not see them; each input
dependency carries its OpenAPI fragment instead, which this class puts into the route's operation
(`openapi_extra`), and `document_schemas` adds the models those fragments name to the document's
components. A route's documentation thus follows from what it reads: it cannot be forgotten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """The route's dependencies, and the input readers an `acting` dependency calls itself."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
            yield from getattr(sub.call, "inputs", ())
        yield from _calls(sub)


class MemcubeRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        calls = list(_calls(self.dependant))
        if not any(getattr(call, "acting", False) for call in calls):
            raise TypeError(f"{path}: a route takes its principal from deps.acting (its rate limit is counted there)")
        body: dict[str, Any] = {}
        parameters: list[dict[str, Any]] = []
        self.body_models: list[type[BaseModel]] = []
        for call in dict.fromkeys(calls):
            fragment: dict[str, Any] = getattr(call, "openapi", {})
            body.update({k: v for k, v in fragment.items() if k == "requestBody"})
            parameters += fragment.get("parameters", [])
            self.body_models += getattr(call, "schemas", ())
        documented = body | ({"parameters": parameters} if parameters else {})
        self.openapi_extra = documented | (self.openapi_extra or {})


def include(app: FastAPI, router: APIRouter, *, strip: str = "", tags: tuple[str, ...] = ()) -> None:
    """Add the router's routes to the app as its own routes: plain routes of the app, whatever
    FastAPI's `include_router` keeps, so everything that walks `app.routes` (the OpenAPI
    components, the template check) sees them.

    As they are, the router's own route objects are added: building a route again (its
    dependencies' signatures read anew) is most of the app's build, a cold start. With `strip`
    and `tags`, copies are added instead: the paths without the `strip` prefix, tagged `tags`
    (a router mounted a second time, elsewhere)."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only API routes are included")
        if not strip and not tags:
            app.router.routes.append(route)
            continue
        app.router.add_api_route(
            route.path.removeprefix(strip),
            route.endpoint,
            methods=sorted(route.methods or ()),
            name=route.name,
            summary=route.summary,
            tags=list(tags or route.tags),
            dependencies=route.dependencies,
            openapi_extra=route.openapi_extra,
            include_in_schema=route.include_in_schema,
            route_class_override=type(route),
        )


def document_schemas(app: FastAPI) -> None:
    """Add the models the routes' bodies name (`MemcubeRoute.body_models`) to the OpenAPI
    document's components, so every `$ref` resolves."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        models = [m for route in app.routes for m in getattr(route, "body_models", ())]
        for model in dict.fromkeys(models):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
