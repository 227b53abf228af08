"""Memory items, their content guards, LSH band keys and id pointers on the DynamoDB table (`MemoryStore`)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Final

from memcube.adapters.dynamodb.table import GSI, Attr, DynamoTable, Item, attr_n, attr_s, body_attr, body_text
from memcube.domain.model import MemoryItem, MemoryMetadata
from memcube.domain.similarity import lsh_keys
from memcube.ports import PutResult

POINTER_SK: Final = "#MEM"
DELETERS: Final = 8
"""Parallel single-item deletes: an item's delete needs its own conditions, which batch writes lack."""


def _item_sk(meta: MemoryMetadata, memory_id: str) -> str:
    return f"ITEM#{meta.created_at}#{memory_id}"


def _band_sks(item: MemoryItem) -> list[str]:
    return [f"LSH#{key}#{item.id}" for key in lsh_keys(item.memory)]


TTL_GRACE_SECONDS: Final = 86_400
"""DynamoDB's TTL (`expires_at`) on an expiring memory's records is its expiry plus this grace:
the expiry sweep (`domain.expiry`, every 15 minutes from the worker's schedule) erases it first,
whole and with its history entry; TTL is the backstop that erases the records anyway if no sweep
ran for a day (within DynamoDB's own deletion delay, typically a few days at most)."""
EXPIRY_SHARDS: Final = 4
"""An expiry day's items spread over this many `gsi1` partitions (adds with a cube default all
land on one day), each far below a partition's write limit."""
EXPIRY_LOOKBACK_DAYS: Final = 7
"""The expiry days a sweep reads back from today: an item expired earlier and still unswept is
TTL-deleted by then (`TTL_GRACE_SECONDS` plus DynamoDB's deletion delay)."""


def _expiry_attrs(meta: MemoryMetadata, memory_id: str) -> dict[str, Attr]:
    """An expiring item record's attributes: `expiry` (what reads filter on), its `gsi1` entry
    (what the sweep queries: `EXPIRY#<day>#<shard>`, sorted by expiry) and the TTL; none without
    an expiry."""
    if meta.expires_at is None:
        return {}
    day = datetime.fromtimestamp(meta.expires_at, UTC).strftime("%Y-%m-%d")
    return {
        "expiry": attr_n(meta.expires_at),
        "gsi1pk": attr_s(f"EXPIRY#{day}#{_shard(memory_id)}"),
        "gsi1sk": attr_s(f"{meta.expires_at:012d}#{memory_id}"),
        **_ttl(meta),
    }


def _ttl(meta: MemoryMetadata) -> dict[str, Attr]:
    return {} if meta.expires_at is None else {"expires_at": attr_n(meta.expires_at + TTL_GRACE_SECONDS)}


def _shard(memory_id: str) -> int:
    return int(hashlib.sha256(memory_id.encode()).hexdigest()[:8], 16) % EXPIRY_SHARDS


class DynamoMemories:
    """A cube's items, guards and band keys in `CUBE#<cube>`; a `MEM#<id>` pointer per item."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def put_memory(self, item: MemoryItem) -> PutResult:
        meta = item.metadata
        cube = attr_s(f"CUBE#{meta.cube_id}")
        item_sk = _item_sk(meta, item.id)
        guard = {
            "Put": {
                "TableName": self._t.name,
                "Item": {
                    "pk": cube,
                    "sk": attr_s(f"HASH#{meta.content_hash}"),
                    "memory_id": attr_s(item.id),
                    **_ttl(meta),
                },
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        record = {
            "Put": {
                "TableName": self._t.name,
                "Item": {
                    "pk": cube,
                    "sk": attr_s(item_sk),
                    "memory_id": attr_s(item.id),
                    "status": attr_s(meta.status),
                    "version": attr_n(meta.version),
                    "body": body_attr(item.model_dump_json()),
                    **_expiry_attrs(meta, item.id),
                },
            }
        }
        bands = [
            {
                "Put": {
                    "TableName": self._t.name,
                    "Item": {"pk": cube, "sk": attr_s(sk), "memory_id": attr_s(item.id), **_ttl(meta)},
                }
            }
            for sk in _band_sks(item)
        ]
        pointer = {
            "Put": {
                "TableName": self._t.name,
                "Item": {
                    "pk": attr_s(f"MEM#{item.id}"),
                    "sk": attr_s(POINTER_SK),
                    "cube_id": attr_s(meta.cube_id),
                    "item_sk": attr_s(item_sk),
                    **_ttl(meta),
                },
            }
        }
        failed = self._t.transact([guard, record, pointer, *bands])
        if failed is None:
            return PutResult("created")
        owner = (failed.get("Item") or {}).get("memory_id", {}).get("S") or self._guard_owner(meta)
        return PutResult("exists", item.id) if owner == item.id else PutResult("duplicate", owner)

    def update_memory(self, item: MemoryItem, expected_version: int) -> bool:
        stored = self.get_memory(item.id)
        if stored is None:
            return False
        if not stored.same_content(item):
            raise ValueError(f"update_memory may not change the cube, text or creation time of {item.id!r}")
        meta = item.metadata
        # Items written before versions were kept as an attribute count as version 1.
        condition = "attribute_exists(#pk) AND #v = :v"
        if expected_version == 1:
            condition = "attribute_exists(#pk) AND (attribute_not_exists(#v) OR #v = :v)"
        try:
            self._t.write(
                "put_item",
                Item={
                    "pk": attr_s(f"CUBE#{meta.cube_id}"),
                    "sk": attr_s(_item_sk(meta, item.id)),
                    "memory_id": attr_s(item.id),
                    "status": attr_s(meta.status),
                    "version": attr_n(meta.version),
                    "body": body_attr(item.model_dump_json()),
                    **_expiry_attrs(meta, item.id),
                },
                ConditionExpression=condition,
                ExpressionAttributeNames={"#pk": "pk", "#v": "version"},
                ExpressionAttributeValues={":v": attr_n(expected_version)},
            )
        except self._t.condition_failed:
            return False
        if stored.metadata.expires_at != meta.expires_at:
            self._retime(item)
        return True

    def _retime(self, item: MemoryItem) -> None:
        """Give the item's guard, pointer and band keys its new TTL (or none), so DynamoDB never
        deletes them out from under an item whose expiry was extended or cleared."""
        meta = item.metadata
        cube = attr_s(f"CUBE#{meta.cube_id}")
        keys = [
            {"pk": cube, "sk": attr_s(f"HASH#{meta.content_hash}")},
            {"pk": attr_s(f"MEM#{item.id}"), "sk": attr_s(POINTER_SK)},
            *({"pk": cube, "sk": attr_s(sk)} for sk in _band_sks(item)),
        ]
        ttl = _ttl(meta)
        for key in keys:
            change: dict[str, Any] = {"UpdateExpression": "REMOVE #ttl"}
            if ttl:
                change = {"UpdateExpression": "SET #ttl = :t", "ExpressionAttributeValues": {":t": ttl["expires_at"]}}
            with contextlib.suppress(self._t.condition_failed):  # a record deleted meanwhile stays deleted
                self._t.write(
                    "update_item",
                    Key=key,
                    ConditionExpression="attribute_exists(#pk)",
                    ExpressionAttributeNames={"#pk": "pk", "#ttl": "expires_at"},
                    **change,
                )

    def rewrite_memory(self, item: MemoryItem, expected_version: int) -> PutResult | None:
        """One transaction: the record (its version checked), the new text's guard (unless
        another item holds it), the old guard removed, and the band keys that differ swapped."""
        stored = self.get_memory(item.id)
        if stored is None:
            return None
        meta, old = item.metadata, stored.metadata
        if (old.cube_id, old.created_at) != (meta.cube_id, meta.created_at):
            raise ValueError(f"rewrite_memory may not move {item.id!r} to another cube or creation time")
        cube, me = attr_s(f"CUBE#{meta.cube_id}"), attr_s(item.id)
        version = "attribute_exists(#pk) AND #v = :v"
        if expected_version == 1:
            version = "attribute_exists(#pk) AND (attribute_not_exists(#v) OR #v = :v)"
        record = {
            "Put": {
                "TableName": self._t.name,
                "Item": {
                    "pk": cube,
                    "sk": attr_s(_item_sk(meta, item.id)),
                    "memory_id": me,
                    "status": attr_s(meta.status),
                    "version": attr_n(meta.version),
                    "body": body_attr(item.model_dump_json()),
                    **_expiry_attrs(meta, item.id),
                },
                "ConditionExpression": version,
                "ExpressionAttributeNames": {"#pk": "pk", "#v": "version"},
                "ExpressionAttributeValues": {":v": attr_n(expected_version)},
            }
        }
        ops: list[dict[str, Any]] = [record]
        if meta.content_hash != old.content_hash:
            mine = {
                "ExpressionAttributeNames": {"#pk": "pk", "#m": "memory_id"},
                "ExpressionAttributeValues": {":id": me},
            }
            ops.append({"Put": {
                "TableName": self._t.name,
                "Item": {"pk": cube, "sk": attr_s(f"HASH#{meta.content_hash}"), "memory_id": me, **_ttl(meta)},
                "ConditionExpression": "attribute_not_exists(#pk) OR #m = :id", **mine,
            }})  # fmt: skip
            ops.append({"Delete": {
                "TableName": self._t.name,
                "Key": {"pk": cube, "sk": attr_s(f"HASH#{old.content_hash}")},
                "ConditionExpression": "attribute_not_exists(#pk) OR #m = :id", **mine,
            }})  # fmt: skip
        before, after = set(_band_sks(stored)), set(_band_sks(item))
        ops += [{"Delete": {"TableName": self._t.name, "Key": {"pk": cube, "sk": attr_s(sk)}}} for sk in before - after]
        ops += [
            {"Put": {"TableName": self._t.name, "Item": {"pk": cube, "sk": attr_s(sk), "memory_id": me, **_ttl(meta)}}}
            for sk in sorted(after - before)
        ]
        codes = self._t.transact_checked(ops)
        if codes is None:
            if old.expires_at != meta.expires_at:
                self._retime(item)  # the guard, pointer and band keys it kept get the new TTL
            return PutResult("created")
        if codes[0] == "ConditionalCheckFailed":
            return None
        if codes[1:2] == ["ConditionalCheckFailed"]:
            return PutResult("duplicate", self._guard_owner(meta))
        raise RuntimeError(f"the content guard of {item.id!r}'s current text names another item")

    def similar_ids(self, cube_id: str, text: str, limit: int) -> list[str]:
        keys = lsh_keys(text)
        if not keys:
            return []
        cube = attr_s(f"CUBE#{cube_id}")

        def band(key: str) -> list[str]:
            found = self._t.query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": cube, ":prefix": attr_s(f"LSH#{key}#")},
                ProjectionExpression="memory_id",
                ConsistentRead=True,
            )
            return [str(i["memory_id"]["S"]) for i in found]

        counts: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=min(DELETERS, len(keys))) as pool:
            for ids in pool.map(band, keys):
                for memory_id in ids:
                    counts[memory_id] = counts.get(memory_id, 0) + 1
        return sorted(counts, key=lambda i: (-counts[i], i))[:limit]

    def _guard_owner(self, meta: MemoryMetadata) -> str:
        found = self._t.get({"pk": attr_s(f"CUBE#{meta.cube_id}"), "sk": attr_s(f"HASH#{meta.content_hash}")})
        if found is None:  # guards are never deleted
            raise RuntimeError(f"content guard of cube {meta.cube_id!r} failed its condition but is gone")
        return str(found["memory_id"]["S"])

    def get_memory(self, memory_id: str) -> MemoryItem | None:
        found = self.get_memories([memory_id])
        return found[0] if found else None

    def get_memories(self, memory_ids: Sequence[str]) -> list[MemoryItem]:
        wanted = list(dict.fromkeys(memory_ids))
        pointers = self._t.batch_get([{"pk": attr_s(f"MEM#{i}"), "sk": attr_s(POINTER_SK)} for i in wanted])
        keys = [{"pk": attr_s(f"CUBE#{p['cube_id']['S']}"), "sk": p["item_sk"]} for p in pointers]
        items = {
            i.id: i for i in (MemoryItem.model_validate_json(body_text(r["body"])) for r in self._t.batch_get(keys))
        }
        return [items[i] for i in wanted if i in items]

    def _activated(self, cube_id: str, live_at: int | None = None) -> dict[str, Any]:
        query: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :item)",
            "FilterExpression": "#st = :active",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#st": "status"},
            "ExpressionAttributeValues": {
                ":pk": attr_s(f"CUBE#{cube_id}"),
                ":item": attr_s("ITEM#"),
                ":active": attr_s("activated"),
            },
            "ConsistentRead": True,
        }
        if live_at is not None:  # expired items are filtered out as archived ones are
            query["FilterExpression"] += " AND (attribute_not_exists(#exp) OR #exp > :now)"
            query["ExpressionAttributeNames"]["#exp"] = "expiry"
            query["ExpressionAttributeValues"][":now"] = attr_n(live_at)
        return query

    def list_memories(
        self, cube_id: str, offset: int, limit: int, live_at: int | None = None
    ) -> tuple[list[MemoryItem], int]:
        """A page by offset: the Query walks the cube's partition from its start and stops after
        `offset + limit` matches, so a page costs O(offset + limit) reads (filtered-out archived
        items are read too). The total is a second, Select=COUNT Query over the whole partition
        (no item data returned, but every item is read): the two are not one snapshot."""
        counted = self._t.pages("query", Select="COUNT", **self._activated(cube_id, live_at))
        total = sum(int(p.get("Count", 0)) for p in counted)
        if limit <= 0 or offset >= total:
            return [], total
        raws = islice(self._t.query(**self._activated(cube_id, live_at)), max(offset, 0), max(offset, 0) + limit)
        return [MemoryItem.model_validate_json(body_text(r["body"])) for r in raws], total

    def iter_memories(self, cube_id: str | None = None) -> Iterator[MemoryItem]:
        if cube_id is not None:
            raws = self._t.query(
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :item)",
                ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
                ExpressionAttributeValues={":pk": attr_s(f"CUBE#{cube_id}"), ":item": attr_s("ITEM#")},
                ConsistentRead=True,
            )
        else:  # every cube: a full scan, for reindexing only
            raws = self._t.scan(
                FilterExpression="begins_with(#sk, :item)",
                ExpressionAttributeNames={"#sk": "sk"},
                ExpressionAttributeValues={":item": attr_s("ITEM#")},
            )
        for raw in raws:
            yield MemoryItem.model_validate_json(body_text(raw["body"]))

    def export_page(self, cube_id: str, cursor: str | None, limit: int) -> tuple[list[MemoryItem], str | None]:
        """A page in sort-key order (oldest first); the cursor is the last item's sort key."""
        kwargs: dict[str, Any] = {
            "TableName": self._t.name,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :item)",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},
            "ExpressionAttributeValues": {":pk": attr_s(f"CUBE#{cube_id}"), ":item": attr_s("ITEM#")},
            "ConsistentRead": True,
            "Limit": limit + 1,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = {"pk": attr_s(f"CUBE#{cube_id}"), "sk": attr_s(cursor)}
        raws: list[Item] = self._t.client.query(**kwargs).get("Items", [])
        page = raws[:limit]
        items = [MemoryItem.model_validate_json(body_text(r["body"])) for r in page]
        return items, (str(page[-1]["sk"]["S"]) if len(raws) > limit else None)

    def delete_memories(self, items: Sequence[MemoryItem]) -> int:
        items = list({(i.metadata.cube_id, i.id): i for i in items}.values())  # one delete per item
        if len(items) <= 1:
            return sum(self._delete_memory(i) for i in items)
        with ThreadPoolExecutor(max_workers=min(DELETERS, len(items))) as pool:
            return sum(pool.map(self._delete_memory, items))

    def _delete_memory(self, item: MemoryItem) -> bool:
        """Guard first (only if it still names this item), then the record, then the pointer: a
        crash part-way leaves an item that a repeated delete finishes, never a guard that names
        a missing item (which would report new content as a duplicate of nothing)."""
        meta = item.metadata
        cube = attr_s(f"CUBE#{meta.cube_id}")
        # A failed condition: the guard is gone already, or names another item (not this one's to remove).
        with contextlib.suppress(self._t.condition_failed):
            self._t.write(
                "delete_item",
                Key={"pk": cube, "sk": attr_s(f"HASH#{meta.content_hash}")},
                ConditionExpression="#m = :id",
                ExpressionAttributeNames={"#m": "memory_id"},
                ExpressionAttributeValues={":id": attr_s(item.id)},
            )
        # Conditional, so of two concurrent deletes of one item exactly one counts it.
        try:
            self._t.write(
                "delete_item",
                Key={"pk": cube, "sk": attr_s(_item_sk(meta, item.id))},
                ConditionExpression="attribute_exists(pk)",
            )
            deleted = True
        except self._t.condition_failed:
            deleted = False
        for sk in _band_sks(item):
            self._t.write("delete_item", Key={"pk": cube, "sk": attr_s(sk)})
        self._t.write("delete_item", Key={"pk": attr_s(f"MEM#{item.id}"), "sk": attr_s(POINTER_SK)})
        return deleted

    def expired_memories(self, before: int, limit: int) -> list[MemoryItem]:
        """From the `gsi1` partitions of the expiry days up to `before` (`EXPIRY_LOOKBACK_DAYS`
        back), soonest first. The index is eventually consistent: the sweep reads each item back."""
        last = datetime.fromtimestamp(before, UTC).date()
        found: list[MemoryItem] = []
        for back in range(EXPIRY_LOOKBACK_DAYS, -1, -1):
            day = (last - timedelta(days=back)).isoformat()
            for shard in range(EXPIRY_SHARDS):
                raws = self._t.query(
                    IndexName=GSI,
                    KeyConditionExpression="#pk = :pk AND #sk <= :before",
                    ExpressionAttributeNames={"#pk": "gsi1pk", "#sk": "gsi1sk"},
                    ExpressionAttributeValues={
                        ":pk": attr_s(f"EXPIRY#{day}#{shard}"),
                        ":before": attr_s(f"{before:012d}#~"),
                    },
                )
                found.extend(MemoryItem.model_validate_json(body_text(r["body"])) for r in islice(raws, limit))
            if len(found) >= limit:
                break
        found.sort(key=lambda i: (i.metadata.expires_at or 0, i.id))
        return found[:limit]
