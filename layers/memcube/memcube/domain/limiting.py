"""Per-principal rate limits and quotas, as fixed windows counted in the store.

Every request a principal makes counts against `rate_limit_per_minute`; every add also counts
against `daily_add_quota`. The principal is the API key's user (a service key is one principal,
whoever it acts for) or, with keys off, the body's user_id. A spent window answers 429 with
`Retry-After` = the seconds until the window ends. A window is counted with one conditional
increment in the store (DynamoDB: an atomic UpdateItem with a TTL), so every Lambda instance
shares it. 0 turns a limit off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from memcube.domain.errors import RateLimited
from memcube.ports import Counter


class Limits:
    def __init__(
        self,
        counter: Counter,
        *,
        per_minute: int,
        adds_per_day: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counter = counter
        self._per_minute = per_minute
        self._adds_per_day = adds_per_day
        self._clock = clock

    def request(self, principal: str) -> None:
        self._spend(f"req:{principal}", self._per_minute, 60, "requests per minute")

    def add(self, principal: str) -> None:
        self._spend(f"add:{principal}", self._adds_per_day, 86_400, "adds per day")

    def _spend(self, key: str, limit: int, window: int, what: str) -> None:
        if limit <= 0:
            return
        now = self._clock()
        start = int(now // window * window)
        if not self._counter.hit(key, limit, start, window):
            retry = int(start + window - now) + 1
            raise RateLimited(f"rate limit: {limit} {what} for {key.split(':', 1)[1]!r}; retry in {retry} s", retry)
