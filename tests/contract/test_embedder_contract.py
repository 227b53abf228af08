"""The embedder contract: fixed-size unit vectors, deterministic, similar texts close together.
Then what only the local neural model (MiniLM) promises: paraphrases, in English and Chinese."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from memcube.ports import Embedder
from memcube_local import minilm as minilm_embedder
from memcube_local.minilm import MiniLMEmbedder

TEXTS = ["alice likes tea", "我喜欢北京", "Alice moved to Lisbon last May", "x"]


def cosine(x: list[float], y: list[float]) -> float:
    return sum(p * q for p, q in zip(x, y, strict=True))


def test_the_same_text_gives_the_same_vector_across_instances(embedder_factory: Callable[[], Embedder]) -> None:
    first, second = embedder_factory(), embedder_factory()
    assert first.model_id == second.model_id
    assert first.embed(TEXTS) == second.embed(TEXTS)


def test_a_batch_gives_the_vectors_of_its_texts_one_by_one(embedder: Embedder) -> None:
    """Equal up to float rounding: a neural model pads a batch to its longest text, which changes
    the order of its float sums (about 1e-7 apart), never what a text means."""
    batch, alone = embedder.embed(TEXTS), [embedder.embed([t])[0] for t in TEXTS]
    assert len(batch) == len(alone)
    for together, single in zip(batch, alone, strict=True):
        assert together == pytest.approx(single, abs=1e-5)
    assert embedder.embed([]) == []


def test_vectors_have_the_dimension_and_unit_length(embedder: Embedder) -> None:
    assert embedder.dimension > 0
    vectors = embedder.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    for vector in vectors:
        assert len(vector) == embedder.dimension
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("text", ["👍", "?!", "   "])
def test_every_non_empty_text_gets_a_unit_vector(embedder: Embedder, text: str) -> None:
    [vector] = embedder.embed([text])
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-6)


def test_similar_texts_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    a, b, c, d = embedder.embed(
        [
            "Alice moved to Lisbon last May",
            "Last May Alice moved to Lisbon",
            "The invoice is due on Friday",
            "Alice moved to Porto",
        ]
    )
    assert cosine(a, b) > cosine(a, d) > cosine(a, c)
    assert cosine(a, b) > cosine(a, c) + 0.3


IN_ANOTHER_PROCESS = {
    "hash": "from memcube.adapters.hash_embedder import HashEmbedder\nembedder = HashEmbedder(384)",
    "minilm": "from memcube_local.minilm import MiniLMEmbedder\nembedder = MiniLMEmbedder()",
}


def test_vectors_are_the_same_in_another_process(
    embedder_factory: Callable[[], Embedder], request: pytest.FixtureRequest
) -> None:
    """Stored vectors must match query vectors computed after a restart (no per-process salt, no
    per-load randomness). For MiniLM this loads the model once more (about 10 s): kept, since a
    restart is exactly when a model that loaded differently would go unnoticed."""
    build = IN_ANOTHER_PROCESS[request.node.callspec.params["embedder_factory"]]
    script = f"import json, sys\n{build}\nprint(json.dumps(embedder.embed(json.loads(sys.argv[1]))))"
    embedder = embedder_factory()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(TEXTS)], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == embedder.embed(TEXTS)


# --- MiniLM: what a neural model adds ---------------------------------------------------------------


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """Every instance shares the process's one loaded model: this loads it once per session."""
    return MiniLMEmbedder()


@pytest.mark.parametrize(
    ("text", "paraphrase", "unrelated"),
    [
        ("Alice moved to Lisbon in March 2024", "In March 2024 Alice relocated to Lisbon", "Bob plays football"),
        ("我下个月搬到里斯本", "下个月我要搬去里斯本", "他讨厌足球"),
    ],
    ids=["english", "chinese"],
)
def test_minilm_scores_a_paraphrase_above_an_unrelated_sentence(
    minilm: MiniLMEmbedder, text: str, paraphrase: str, unrelated: str
) -> None:
    """The reason to ship a model: a paraphrase shares few words, yet must rank first."""
    a, b, c = minilm.embed([text, paraphrase, unrelated])
    assert cosine(a, b) > cosine(a, c) + 0.3


@pytest.mark.parametrize("text", ["", " \n\t "])
def test_minilm_gives_empty_text_a_unit_vector(minilm: MiniLMEmbedder, text: str) -> None:
    [vector] = minilm.embed([text])
    assert len(vector) == 384
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-6)


def test_minilm_never_returns_a_zero_vector(minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zero vector has no cosine with anything; a model that yields one gets a fixed unit vector."""
    import torch

    class Silent:  # the model's two steps `_encode` calls, giving nothing
        def preprocess(self, texts: list[str]) -> list[str]:
            return texts

        def __call__(self, features: list[str]) -> dict[str, torch.Tensor]:
            return {"sentence_embedding": torch.zeros((len(features), 384))}

    monkeypatch.setattr(minilm_embedder, "_model", Silent())
    vectors = minilm.embed(["anything", "else"])
    assert [math.sqrt(sum(v * v for v in vector)) for vector in vectors] == [1.0, 1.0]
    assert vectors[0] is not vectors[1]  # callers may change one


def test_minilm_gives_the_vectors_sentence_transformers_encode_gives(
    minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`embed` runs the model's steps itself (not `encode`, whose per-call set-up was a third of a
    query's time): the same unit vectors, in the texts' order, over more than one batch of mixed
    lengths (sorted by length inside, so batches pad little)."""
    texts = [f"{'note ' * (i % 17)}item {i}: the {['red', 'blue', 'green'][i % 3]} kettle" for i in range(70)]
    model = minilm_embedder._load()
    expected = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    monkeypatch.setattr(model, "encode", None)  # embed must not need it
    got = np.asarray(minilm.embed(texts))
    assert got.shape == (70, 384)
    assert np.abs(got - expected).max() < 1e-5


def test_a_text_much_shorter_than_its_batchs_longest_is_embedded_in_another_batch(
    minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch pads each text to its longest: an add's window (about 700 characters) and its
    short second text ran faster apart. The vectors are still `encode`'s."""
    model = minilm_embedder._load()
    texts = ["short " * 40, "long " * 140, "medium " * 100, "tiny", "long " * 139]
    expected = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    sizes: list[int] = []

    class Counting:  # the real model, counting the texts of each forward pass
        def preprocess(self, texts: list[str]) -> Any:
            sizes.append(len(texts))
            return model.preprocess(texts)

        def __call__(self, features: Any) -> Any:
            return model(features)

    monkeypatch.setattr(minilm_embedder, "_model", Counting())
    got = np.asarray(minilm.embed(texts))
    assert sizes == [3, 2]  # 700, 700 and 695 characters; then 240 and 4
    assert np.abs(got - expected).max() < 1e-5


def test_texts_of_near_length_share_a_batch_and_a_batch_holds_at_most_64() -> None:
    """A forward pass has a fixed cost: a text shorter than the batch's longest by less than
    `SPLIT_CHARS`, or more than half as long, is embedded with it."""
    batches = minilm_embedder._batches
    assert batches([700, 695, 700, 240, 4, 0, 0]) == [[0, 2, 1], [3, 4, 5, 6]]
    assert batches([120, 10]) == [[0, 1]]  # 110 shorter: too little padding to pay for a pass
    assert batches([500, 250]) == [[0], [1]]  # half as long, and 250 shorter
    assert batches([499, 250]) == [[0, 1]]
    assert batches([10] * 130) == [list(range(64)), list(range(64, 128)), [128, 129]]
    assert batches([]) == []


def test_minilm_without_its_packages_says_how_to_install_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm_embedder, "_model", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with pytest.raises(RuntimeError, match=r"memcube\[local\].*MEMCUBE_EMBEDDER=hash"):
        MiniLMEmbedder().embed(["tea"])


def test_minilm_loads_nothing_until_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building it is free (a container builds one per process); embedding nothing loads nothing."""
    monkeypatch.setattr(minilm_embedder, "_model", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # a load would raise
    embedder = MiniLMEmbedder()
    assert (embedder.model_id, embedder.dimension) == ("minilm-l6-v2-384", 384)
    assert embedder.embed([]) == []


def test_minilm_reads_a_text_longer_than_its_256_word_pieces_whole(minilm: MiniLMEmbedder) -> None:
    """The model truncates at 256 word pieces; the adapter embeds the rest too (in parts,
    averaged), so words past the limit still move the vector."""
    head = "My cat sleeps on the windowsill every afternoon. " * 40  # well past 256 pieces alone
    [head_only, with_tail, head_again] = minilm.embed([head, head + "Quantum chromodynamics lectures. " * 40, head])
    cosine = sum(a * b for a, b in zip(head_only, with_tail, strict=True))
    assert cosine < 0.98  # a truncating embedder would give the same vector (cosine 1.0)
    assert head_only == head_again
    assert abs(sum(v * v for v in with_tail) - 1.0) < 1e-5
