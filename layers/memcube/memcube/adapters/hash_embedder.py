"""A deterministic feature-hashing embedder: no model, no network, stable across processes.

Words and character trigrams are hashed (blake2b, so not salted per process like `hash()`) into
signed buckets and L2-normalized, so texts sharing words and spellings land close together. It is
the test double of the Embedder port and the offline fallback; the local neural model replaces
it as the embedded default once present.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

_WORD = re.compile(r"[\u4e00-\u9fff]|[^\W_]+", re.UNICODE)


class HashEmbedder:
    def __init__(self, dimension: int = 384) -> None:
        self._dimension = dimension

    @property
    def model_id(self) -> str:
        return f"hash-v1-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int | None:
        return None  # every word of any text is hashed

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> list[float]:
        vec = [0.0] * self._dimension
        lowered = text.lower()
        features = _WORD.findall(lowered)
        features += [lowered[i : i + 3] for i in range(max(len(lowered) - 2, 0))]
        if not features and lowered.strip():
            features = [lowered.strip()]  # emoji or punctuation alone: still one feature, never a zero vector
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self._dimension
            vec[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]
