"""numpy where it is installed (the embedded default), pure Python where it is not (the Lambda
layer, which stays small): the domain's vector arithmetic takes whichever is there."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def numpy_or_none() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy
