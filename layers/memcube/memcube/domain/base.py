"""The base of memcube's pydantic models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic model whose validator is built on first use, not at import: a cold Lambda imports
    every model of the API (or the worker), while its first request uses a handful of them, and
    building them all was the largest part of memcube's import time beyond its libraries."""

    model_config = ConfigDict(defer_build=True)
