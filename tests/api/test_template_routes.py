"""template.yaml routes what the app serves: every route of the API has its HttpApi event (a
route the template forgets is a 404 from API Gateway on AWS only), and the optional JWT front
door exists only with JwtIssuer set and verifies every route but /health."""

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
TEMPLATE_DOC: dict[str, Any] = yaml.load(TEMPLATE.read_text(), _Tagged)  # a SafeLoader subclass
RESOURCES: dict[str, Any] = TEMPLATE_DOC["Resources"]


def test_every_route_of_the_app_has_an_http_api_event() -> None:
    app = create_app(lambda: None)  # type: ignore[arg-type, return-value]
    served = {
        (m, r.path) for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema for m in r.methods or ()
    }
    served.add(("GET", "/health"))
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
    assert set(routes) == {"$default", "GET /health"}
    env = RESOURCES["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MEMCUBE_JWT_API_ID"] == {"!If": ["UseJwt", {"!Ref": "JwtApi"}, ""]}


def test_the_jwt_authorizer_checks_the_configured_issuer_and_audience_from_the_authorization_header() -> None:
    """S6: API Gateway verifies the token against these (signature and expiry by the issuer's keys);
    a stack with an issuer but no audience, or an issuer that is not https, does not deploy."""
    authorizer = RESOURCES["JwtAuthorizer"]["Properties"]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["JwtConfiguration"] == {"Issuer": {"!Ref": "JwtIssuer"}, "Audience": {"!Ref": "JwtAudience"}}
    rules = TEMPLATE_DOC["Rules"]
    on_jwt = {"!Not": [{"!Equals": [{"!Ref": "JwtIssuer"}, ""]}]}
    assert rules["JwtNeedsAudience"]["RuleCondition"] == on_jwt
    assert rules["JwtNeedsAudience"]["Assertions"][0]["Assert"] == {
        "!Not": [{"!Equals": [{"!Join": ["", {"!Ref": "JwtAudience"}]}, ""]}]
    }
    assert rules["JwtIssuerIsHttps"]["RuleCondition"] == on_jwt
    assert rules["JwtIssuerIsHttps"]["Assertions"][0]["Assert"] == {
        "!Equals": [{"!Select": [0, {"!Split": ["://", {"!Ref": "JwtIssuer"}]}]}, "https"]
    }


def test_what_an_erasure_leaves_on_aws_expires_dlq_copies_in_14_days_and_claim_checks_in_28() -> None:
    """S18's limit, pinned: SQS cannot delete a group's messages and the claim-check bodies are
    not indexed by cube, so these are left to expire rather than erased."""
    dlq, tasks = RESOURCES["DeadLetterQueue"]["Properties"], RESOURCES["TaskQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == tasks["MessageRetentionPeriod"] == 14 * 24 * 3600
    [rule] = RESOURCES["LargeBodyBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"]) == ("Enabled", 28)
    assert "Prefix" not in rule and "Filter" not in rule  # every claim check, whatever its key


def test_both_functions_publish_a_snapstart_version_and_every_front_door_invokes_its_alias() -> None:
    function = TEMPLATE_DOC["Globals"]["Function"]
    assert function["AutoPublishAlias"] == "live"
    assert function["SnapStart"] == {"ApplyOn": {"!Ref": "SnapStart"}}
    assert (function["Runtime"], function["Architectures"]) == ("python3.12", ["arm64"])  # SnapStart supports both
    assert TEMPLATE_DOC["Parameters"]["SnapStart"]["AllowedValues"] == ["PublishedVersions", "None"]
    assert RESOURCES["JwtIntegration"]["Properties"]["IntegrationUri"] == {"!Ref": "ApiFunction.Alias"}
    assert RESOURCES["JwtInvokePermission"]["Properties"]["FunctionName"] == {"!Ref": "ApiFunction.Alias"}
