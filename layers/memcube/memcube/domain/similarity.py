"""Lexical near-duplicate detection: word shingles, Jaccard similarity and MinHash LSH keys.

The store keeps each item's LSH band keys next to the item, written in the same transaction, so
the organizer finds near-copies the moment an earlier item is written (no index refresh lag).
A candidate that shares a band is then confirmed with the exact Jaccard similarity of the two
shingle sets, so the keys only decide what is compared, never what is merged.

MinHash is a few lines over the standard library here rather than datasketch, which would pull
numpy and scipy into the worker's Lambda layer for 48 multiply-and-mod operations per shingle.
Where numpy is installed anyway (the embedded default), the same signature is computed with it,
exactly (modular arithmetic on 64-bit words, no floating point): the keys are identical, so a
store written by either path is read by the other. A window of 800 words costs about 30 ms in
pure Python and 1 ms with numpy, and the keys of the last texts are cached (the organizer asks
for them up to three times per item).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

from memcube.domain.accel import numpy_or_none

PERMUTATIONS = 48
BANDS = 12
ROWS = PERMUTATIONS // BANDS
"""12 bands of 4 rows: a pair at Jaccard 0.7 shares a band with probability 0.96, at 0.6 0.80,
at 0.3 0.09 (1 - (1 - J^4)^12), so candidates at the merge threshold are nearly always found
and unrelated items rarely cost a comparison."""

_PRIME = (1 << 61) - 1
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
"""Kana, CJK ideographs and Hangul (a regex character-class body): every tokenizer here (the
shingles, the reader's token count, the local index's full-text) takes these one at a time."""
_TOKEN = re.compile(rf"[{CJK}]|[^\W_]+", re.UNICODE)
_ROLE_PREFIX = re.compile(r"^(?:(?:user|assistant|system|tool): (?:\[[^\]\n]*\]: )?|\[[^\]\n]*\]$)", re.MULTILINE)
"""A line's `role: ` prefix (with the `[time]: ` of windows stored before times had lines of
their own) and a window's `[time]` lines."""


def tokens(text: str) -> list[str]:
    """Lower-cased words, with each CJK character its own token (Chinese has no spaces), and the
    fast reader's `role: ` prefixes and `[time]` lines removed, so two renderings of one message
    match."""
    text = _ROLE_PREFIX.sub("", unicodedata.normalize("NFKC", text))
    return _TOKEN.findall(text.lower())


def shingles(text: str) -> frozenset[str]:
    """Token bigrams (a single token stands alone): one changed word in a 40-word window keeps
    Jaccard near 0.9, while reordered clauses still share most pairs."""
    toks = tokens(text)
    if len(toks) < 2:
        return frozenset(toks)
    return frozenset(f"{a} {b}" for a, b in itertools.pairwise(toks))


def numbers_in(text: str) -> frozenset[str]:
    """The numbers a text states (dates, amounts, versions): two texts that differ only there
    are different facts, however alike they read."""
    return frozenset(t for t in tokens(text) if any(c.isdigit() for c in t))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@cache
def _coefficients() -> tuple[tuple[int, int], ...]:
    """Fixed (a, b) pairs of the universal hash family, derived from a constant seed so every
    process and every store agrees on the keys."""
    out = []
    for i in range(PERMUTATIONS):
        digest = hashlib.blake2b(f"memcube-minhash-{i}".encode(), digest_size=16).digest()
        a = int.from_bytes(digest[:8], "little") % (_PRIME - 1) + 1
        b = int.from_bytes(digest[8:], "little") % _PRIME
        out.append((a, b))
    return tuple(out)


def _signature_python(base: Sequence[int]) -> list[int]:
    return [min((a * h + b) % _PRIME for h in base) for a, b in _coefficients()]


def _signature_numpy(base: Sequence[int]) -> list[int]:
    """`_signature_python` on numpy, exactly: with p = 2^61 - 1, (a*h + b) mod p where a and
    h (reduced mod p) are split into 32-bit halves so that every partial product fits 64 bits,
    and 2^61 = 1, 2^64 = 8 (mod p) fold the high parts back down. uint64 throughout."""
    np = numpy_or_none()
    u = np.uint64
    prime, low32, low29 = u(_PRIME), u(0xFFFFFFFF), u((1 << 29) - 1)

    def fold(x: Any) -> Any:  # x < 2^64 -> x mod p
        x = (x & prime) + (x >> u(61))
        return np.where(x >= prime, x - prime, x)

    h = np.array([x % _PRIME for x in base], dtype=u)[None, :]
    coefficients = np.array(_coefficients(), dtype=u)
    a, b = coefficients[:, :1], coefficients[:, 1:]
    a_hi, a_lo, h_hi, h_lo = a >> u(32), a & low32, h >> u(32), h & low32
    high = fold(a_hi * h_hi * u(8))  # the 2^64 part: factors < 2^29
    mid = a_hi * h_lo + a_lo * h_hi  # < 2^62, weighs 2^32 = (top bits) * 2^61 + (low 29 bits) * 2^32
    mid = fold((mid >> u(29)) + ((mid & low29) << u(32)))
    products = fold(high + mid + fold(a_lo * h_lo))
    return [int(v) for v in fold(products + b).min(axis=1)]


@lru_cache(maxsize=256)
def _lsh_keys(text: str) -> tuple[str, ...]:
    grams = shingles(text)
    if not grams:
        return ()
    base = [int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") for g in grams]
    signature = _signature_numpy(base) if numpy_or_none() is not None else _signature_python(base)
    keys = []
    for band in range(BANDS):
        rows = signature[band * ROWS : (band + 1) * ROWS]
        digest = hashlib.blake2b(repr(rows).encode(), digest_size=8).hexdigest()
        keys.append(f"{band:02d}{digest}")
    return tuple(keys)


def lsh_keys(text: str) -> list[str]:
    """One key per band of the text's MinHash signature (empty for a text with no words)."""
    return list(_lsh_keys(text))
