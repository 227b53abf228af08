"""API Lambda entry: Mangum adapts API Gateway HTTP API (v2) events to the FastAPI app.

Kept light for cold starts (BENCHMARKS.md): the app runs its blocking calls inline (one request
per Lambda process), and there is no X-Ray SDK here. The function is still traced by Lambda
(`Tracing: Active`: its initialization and invocation segments); importing the SDK and its
recorder would add about 0.3 s to every cold start for subsegments of two AWS calls. The worker,
whose calls are many and slow, is traced with the SDK (`memcube.observability.tracer`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from memcube import snapstart
from memcube.observability import log_as_json, logger, metrics
from memcube.wiring import container_from_env
from memcube_api.app import create_app

app = create_app(container_from_env, offload=False)
log_as_json("memcube_api")  # refusals (memcube_api.errors) as JSON with their fields
snapstart.register(lambda: container_from_env().warm_api())  # SnapStart: ready before the snapshot
_asgi = Mangum(app, lifespan="off", api_gateway_base_path="/")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = _asgi(event, context)  # type: ignore[arg-type]  # context types differ only in typing
    metrics.add_metric(name=f"Http{int(response['statusCode']) // 100}xx", unit=MetricUnit.Count, value=1)
    return response
