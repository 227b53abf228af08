"""Memory items, their content guards, LSH band keys and id pointers on the DynamoDB table (`MemoryStore`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Final

from memcube.adapters.dynamodb.table import DynamoTable, Item, attr_n, attr_s, body_attr, body_text
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
                "Item": {"pk": cube, "sk": attr_s(f"HASH#{meta.content_hash}"), "memory_id": attr_s(item.id)},
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
                },
            }
        }
        bands = [
            {"Put": {"TableName": self._t.name, "Item": {"pk": cube, "sk": attr_s(sk), "memory_id": attr_s(item.id)}}}
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
                },
                ConditionExpression=condition,
                ExpressionAttributeNames={"#pk": "pk", "#v": "version"},
                ExpressionAttributeValues={":v": attr_n(expected_version)},
            )
        except self._t.condition_failed:
            return False
        return True

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
                "Item": {"pk": cube, "sk": attr_s(f"HASH#{meta.content_hash}"), "memory_id": me},
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
            {"Put": {"TableName": self._t.name, "Item": {"pk": cube, "sk": attr_s(sk), "memory_id": me}}}
            for sk in sorted(after - before)
        ]
        codes = self._t.transact_checked(ops)
        if codes is None:
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

    def _activated(self, cube_id: str) -> dict[str, Any]:
        return {
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

    def list_memories(self, cube_id: str, offset: int, limit: int) -> tuple[list[MemoryItem], int]:
        """A page by offset: the Query walks the cube's partition from its start and stops after
        `offset + limit` matches, so a page costs O(offset + limit) reads (filtered-out archived
        items are read too). The total is a second, Select=COUNT Query over the whole partition
        (no item data returned, but every item is read): the two are not one snapshot."""
        total = sum(int(p.get("Count", 0)) for p in self._t.pages("query", Select="COUNT", **self._activated(cube_id)))
        if limit <= 0 or offset >= total:
            return [], total
        raws = islice(self._t.query(**self._activated(cube_id)), max(offset, 0), max(offset, 0) + limit)
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
