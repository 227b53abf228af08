"""Dead-letter records on the DynamoDB table (`DeadLetterStore`)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

from memcube.adapters.dynamodb.table import COMPRESS_OVER, MAX_BODY, DynamoTable, attr_s, body_attr, body_text
from memcube.domain.model import DeadLetter

DLQ_PK: Final = "DLQ"
DEAD_LETTER_KEEP: Final = 256 * 1024
"""A dead letter too large to store keeps this many bytes of its body (and says so)."""


def _fits(json_text: str) -> bool:
    data = json_text.encode()
    return len(data) <= COMPRESS_OVER or len(zlib.compress(data, 6)) <= MAX_BODY


def _fit(letter: DeadLetter) -> DeadLetter:
    """The letter itself, or (if even compressed it cannot be stored) one with its body cut short:
    losing the record of a dead letter would be worse than losing the tail of its body."""
    if _fits(letter.model_dump_json()):
        return letter
    data = letter.body.encode()
    keep = DEAD_LETTER_KEEP
    while True:
        kept = data[:keep].decode(errors="ignore")
        note = f" [body truncated for the store: first {len(kept.encode())} of {len(data)} bytes kept]"
        cut = letter.model_copy(update={"body": kept, "reason": letter.reason + note})
        if _fits(cut.model_dump_json()) or keep == 0:
            return cut
        keep //= 2


class DynamoDeadLetters:
    """The one `DLQ` partition (see `table` on why one), one item per `DeadLetter.key` (of the
    letter as stored: a body cut short the same way gives the same key). Records written before
    that were keyed `<failed_at>#<message_id>`; they are still listed and deleted."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def record_dead_letter(self, letter: DeadLetter) -> None:
        kept = _fit(letter)
        self._t.write(
            "put_item",
            Item={
                "pk": attr_s(DLQ_PK),
                "sk": attr_s(kept.key),
                "body": body_attr(kept.model_dump_json()),
            },
        )

    def list_dead_letters(self) -> list[DeadLetter]:
        items = self._t.query(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": "pk"},
            ExpressionAttributeValues={":pk": attr_s(DLQ_PK)},
            ConsistentRead=True,
        )
        letters = [DeadLetter.model_validate_json(body_text(i["body"])) for i in items]
        return sorted(letters, key=lambda d: d.failed_at)

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        removed = 0
        for letter in letters:
            for sk in (letter.key, f"{letter.failed_at}#{letter.message_id}"):  # the second: older records
                old = self._t.write("delete_item", Key={"pk": attr_s(DLQ_PK), "sk": attr_s(sk)}, ReturnValues="ALL_OLD")
                removed += "Attributes" in old
        return removed
