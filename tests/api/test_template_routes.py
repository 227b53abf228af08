"""template.yaml routes what the app serves: every route of the API has its HttpApi event (a
route the template forgets is a 404 from API Gateway on AWS only), and the optional JWT front
door exists only with JwtIssuer set and verifies every route but /health and the console's
static files."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi.routing import APIRoute

from memcube_api.app import create_app
from tests.aws_support import TEMPLATE


class _Tagged(yaml.SafeLoader):
    """CloudFormation YAML with each intrinsic kept as {"!Tag": value}."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"!{suffix}": value}


_Tagged.add_multi_constructor("!", _intrinsic)
RESOURCES: dict[str, Any] = yaml.load(TEMPLATE.read_text(), _Tagged)["Resources"]  # a SafeLoader subclass


def test_every_route_of_the_app_has_an_http_api_event() -> None:
    app = create_app(lambda: None)  # type: ignore[arg-type, return-value]
    served = {
        (m, r.path) for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema for m in r.methods or ()
    }
    served.add(("GET", "/health"))
    served |= {("GET", "/console"), ("GET", "/console/{name}")}  # the web console's static files
    events = RESOURCES["ApiFunction"]["Properties"]["Events"].values()
    routed = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events if e["Type"] == "HttpApi"}
    assert served - routed == set(), "routes the template does not send to the API function"
    assert routed - served == set(), "template routes the app does not serve"


def test_the_jwt_front_door_is_conditional_and_guards_every_route_but_health() -> None:
    jwt = {name: r for name, r in RESOURCES.items() if name.startswith("Jwt")}
    assert {r["Type"] for r in jwt.values()} >= {
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Authorizer",
        "AWS::ApiGatewayV2::Route",
        "AWS::Lambda::Permission",
    }
    assert all(r.get("Condition") == "UseJwt" for r in jwt.values())
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in jwt.values() if r["Type"].endswith("Route")}
    assert routes["$default"]["AuthorizationType"] == "JWT"
    assert routes["$default"]["AuthorizerId"] == {"!Ref": "JwtAuthorizer"}
    assert routes["GET /health"]["AuthorizationType"] == "NONE"
    # The console's static files are public; its data goes through $default (JWT).
    assert routes["GET /console"]["AuthorizationType"] == routes["GET /console/{name}"]["AuthorizationType"] == "NONE"
    assert set(routes) == {"$default", "GET /health", "GET /console", "GET /console/{name}"}
    env = RESOURCES["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MEMCUBE_JWT_API_ID"] == {"!If": ["UseJwt", {"!Ref": "JwtApi"}, ""]}
