"""Event time: when the things a memory tells of happened, read from its messages' `chat_time`.

People send times in many forms (ISO 8601, `1:56 pm on 8 May, 2023`, `May 8, 2023`, a date
without a time); dateutil's parser reads them all, the words around a date ignored. A time
without a year is not guessed (it is kept as text in the sources only), a time without a zone
is taken as UTC, and a date alone as its midnight. A memory's event time is the span from its
earliest to its latest message: `event_time` filters compare against that span (see
`search.filter_doc`), and `reference_time` resolves "yesterday" or "last month" in a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from memcube.domain.model import iso

_DEFAULTS = (datetime(2001, 1, 1), datetime(2002, 2, 2))
"""Two defaults that differ in every field: a field that parses the same under both was written."""
MAX_TEXT = 64


@lru_cache(maxsize=4096)
def parse_time(text: str | None) -> datetime | None:
    """The instant `text` names (UTC), or None when it names none with a year. Cached: the
    messages of one add mostly share a time, and dateutil takes about 0.3 ms a parse."""
    if not text or len(text) > MAX_TEXT:
        return None
    from dateutil import parser as _dateutil  # on first use: the API's cold start never pays for it

    try:
        first, second = (_dateutil.parse(text, default=d, fuzzy=True) for d in _DEFAULTS)
    except (ValueError, OverflowError):
        return None
    if first.year != second.year:  # no year in the text: never guessed
        return None
    parsed = first
    instant: datetime = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return instant


def shown(text: str) -> str:
    """A message time as a memory's `[time]` line shows it: `2023-05-08 13:56` (UTC; the date
    alone at midnight) when it parses, so every memory reads alike and costs an agent two words
    instead of six; the text as sent otherwise."""
    instant = parse_time(text)
    if instant is None:
        return text
    return instant.strftime("%Y-%m-%d" if (instant.hour, instant.minute) == (0, 0) else "%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Span:
    """A closed interval of time, in UTC."""

    start: datetime
    end: datetime

    def overlaps(self, other: Span) -> bool:
        return self.start <= other.end and other.start <= self.end

    def distance(self, other: Span) -> timedelta:
        """Zero when they overlap, else the gap between them."""
        if self.overlaps(other):
            return timedelta(0)
        return other.start - self.end if self.end < other.start else self.start - other.end


def span_of(times: Iterable[str | None]) -> Span | None:
    """The span of the times that parse, or None when none does."""
    parsed = [t for t in (parse_time(x) for x in times) if t is not None]
    return Span(min(parsed), max(parsed)) if parsed else None


def event_times(times: Iterable[str | None]) -> tuple[str | None, str | None]:
    """A memory's `(event_time, event_time_end)` as stored: ISO 8601 in UTC, or None."""
    span = span_of(times)
    return (iso(span.start), iso(span.end)) if span else (None, None)


_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}
_NUMBER = r"\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten"
# Patterns, compiled by `re` (and cached) on the first search that reads a query's period, not
# when the API imports this module for its time parsing (a cold start).
_AGO = rf"\b({_NUMBER})\s+(day|week|month|year)s?\s+ago\b"
_LAST = r"\b(?:last|past|previous)\s+(day|week|month|year)\b"
_THIS = r"\bthis\s+(week|month|year)\b"
_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_WORDS |= {"nine": 9, "ten": 10}
_MONTH_YEAR = r"(?i)\b(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,?\s+(\d{4})\b"
_YEAR = r"(?i)\b(?:in|during|since|before|after|of)\s+((?:19|20)\d{2})\b"


def query_span(query: str, reference: datetime) -> Span | None:
    """The period a query asks about, from its words, `reference` being "now": "yesterday",
    "last week", "3 days ago", "this month", "in May 2023", "in 2022". None when it names none."""
    text = query.lower()
    day = reference.replace(hour=0, minute=0, second=0, microsecond=0)
    if re.search(r"\byesterday\b", text):
        return Span(day - timedelta(days=1), day - timedelta(microseconds=1))
    if re.search(r"\btoday\b", text):
        return Span(day, day + timedelta(days=1) - timedelta(microseconds=1))
    if m := re.search(_AGO, text):
        n = int(m.group(1)) if m.group(1).isdigit() else _WORDS[m.group(1)]
        length = timedelta(days=_UNITS[m.group(2)])
        centre = reference - n * length
        return Span(centre - length / 2, centre + length / 2)
    if m := re.search(_LAST, text):
        return Span(reference - timedelta(days=_UNITS[m.group(1)]), reference)
    if m := re.search(_THIS, text):
        return Span(reference - timedelta(days=_UNITS[m.group(1)]), reference)
    if m := re.search(_MONTH_YEAR, query):
        start = parse_time(f"1 {m.group(1)} {m.group(2)}")
        if start is not None:
            following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
            return Span(start, following - timedelta(microseconds=1))
    if m := re.search(_YEAR, query):
        year = int(m.group(1))
        return Span(datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC) - timedelta(microseconds=1))
    return None
