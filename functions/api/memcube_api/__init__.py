"""The HTTP API (FastAPI). `app` builds routes; `handler` adapts them to API Gateway via Mangum."""
