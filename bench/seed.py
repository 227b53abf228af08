"""Cubes of 1k to 100k items on the embedded default, seeded quickly through the adapters.

Items are what fast mode makes of short conversations (`bench.corpus.snippet_texts` rendered by
the fast reader: one window each, with its sources), written one by one with
`SqliteMemories.put_memory` (content guard and LSH band keys included) and indexed in batches with
`SqliteIndex.upsert`. Their vectors are seeded random unit vectors recorded as all-MiniLM-L6-v2's
(exact vector search costs the same whatever the values are, and embedding 100k texts would
take most of an hour here), so the benchmarks' queries and adds can use the real model.

A seeded cube is cached under `.bench-cache/` by size, seed and the storage format (the SQLite
schemas, the LSH parameters and the item model), and copied before a benchmark writes to it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.common import CACHE, log
from bench.corpus import snippet_texts

CUBE = "alice"
TOPICS = ("travel", "food", "work", "family", "health", "hobby", "money", "home")
DIMENSION = 384
SEED_NAMESPACE = uuid.UUID("0c9d7e61-7a43-4a8e-9a53-1f6a4f3b2c10")
SNIPPET_WINDOW_TOKENS = 1024
"""A snippet is one item: the window is sized for the longest (the reader's own is 224 tokens)."""


def format_fingerprint() -> str:
    from memcube.domain import similarity
    from memcube.domain.model import MemoryItem
    from memcube_local import sqlite as sqlite_store
    from memcube_local.sqlite import index as sqlite_index

    parts = [
        sqlite_store.SCHEMA,
        sqlite_index.SCHEMA,
        f"{similarity.PERMUTATIONS}/{similarity.BANDS}",
        json.dumps(MemoryItem.model_json_schema(), sort_keys=True),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]


def model_id_of(embedder: str) -> str:
    """The model id the configured embedder records (nothing is loaded to find it)."""
    from memcube.settings import Settings
    from memcube_local.wiring import LocalContainer

    return LocalContainer(Settings(backend="embedded", embedder=embedder)).embedder.model_id  # type: ignore[arg-type]


def _items(size: int, seed: int, batch: int, model_id: str) -> Iterator[list[object]]:
    import numpy as np

    from memcube.domain.ingest import content_hash
    from memcube.domain.model import MemoryItem, MemoryMetadata, SourceMessage
    from memcube.domain.reader import windows

    rng = np.random.default_rng(seed)
    conversations = snippet_texts(size, seed=seed)
    for start in range(0, size, batch):
        chunk = conversations[start : start + batch]
        vectors = rng.standard_normal((len(chunk), DIMENSION), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        out: list[object] = []
        for k, (messages, vector) in enumerate(zip(chunk, vectors, strict=True)):
            n = start + k
            units = [
                SourceMessage(type="chat", role=m.role, content=m.content, chat_time=m.chat_time) for m in messages
            ]
            # one window each, as before windows shrank to 224 tokens (14 of the 100k snippets exceed it)
            [window] = windows(units, limit=SNIPPET_WINDOW_TOKENS)
            at = messages[0].chat_time
            out.append(
                MemoryItem(
                    id=str(uuid.uuid5(SEED_NAMESPACE, f"{seed}/{n}")),
                    memory=window.text,
                    metadata=MemoryMetadata(
                        user_id=CUBE,
                        session_id=f"seed-session-{n // 7}",
                        cube_id=CUBE,
                        memory_type=window.memory_type,
                        key=window.key,
                        tags=["mode:fast"],
                        info={"topic": TOPICS[n % len(TOPICS)]},
                        sources=window.sources,
                        embedding=vector.tolist(),
                        embedding_model=model_id,
                        created_at=at,
                        updated_at=at,
                        content_hash=content_hash(window.text),
                        task_id=f"seed-task-{n}",
                    ),
                )
            )
        yield out


def seeded(size: int, embedder: str = "minilm", seed: int = 11) -> Path:
    """The data dir of a cached cube of `size` items, its vectors recorded as `embedder`'s
    (seeded now if not cached)."""
    from memcube_local.sqlite import open_stores
    from memcube_local.sqlite.index import SqliteIndex

    model_id = model_id_of(embedder)
    path = CACHE / f"cube-{size}-{seed}-{model_id}-{format_fingerprint()}"
    if (path / "done").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    stores, index = open_stores(path / "store.db"), SqliteIndex(path / "index.db")
    stores.directory.register_user(CUBE)
    start = time.perf_counter()
    written = 0
    for items in _items(size, seed, 1000, model_id):
        for item in items:
            stores.memories.put_memory(item)  # type: ignore[arg-type]
        index.upsert(items)  # type: ignore[arg-type]
        written += len(items)
        if written % 10_000 == 0 or written == size:
            log(f"seeding a cube of {size}: {written} items ({time.perf_counter() - start:.0f} s)")
    stores.close()
    index.close()
    (path / "done").write_text(f"{size} items in {time.perf_counter() - start:.1f} s\n")
    return path


def working_copy(size: int, into: Path, embedder: str = "minilm", seed: int = 11) -> Path:
    """A copy of the cached cube that a benchmark may write to, opened once so the index's
    schema upgrades (an index built on first open after an upgrade: about 0.5 s at 100k) are
    done before anything is timed."""
    from memcube_local.sqlite.index import SqliteIndex

    source = seeded(size, embedder, seed)
    target = into / f"cube-{size}"
    shutil.copytree(source, target)
    SqliteIndex(target / "index.db").close()
    return target
