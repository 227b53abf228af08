"""The shared contracts on the real-server adapters: the queue's send contract on SQS FIFO
(LocalStack) and the index and text-search contracts on OpenSearch (osmem-server). The store
contract runs on DynamoDB Local in test_dynamodb_local.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from memcube.adapters.opensearch_index import OpenSearchIndex
from memcube.adapters.sqs_queue import SqsQueue
from memcube.domain.messages import QueuedAdd
from tests.contract.support import QueueUnderTest
from tests.contract.test_index_contract import (  # noqa: F401 - collected here against OpenSearch
    test_delete_counts_only_the_documents_that_were_indexed,
    test_delete_is_idempotent_and_ignores_unknown_ids,
    test_delete_where_removes_a_users_documents_in_one_cube_only,
    test_delete_where_without_a_user_empties_the_cube_of_every_status,
    test_docs_survive_reopening,
    test_expired_documents_names_each_documents_cube_across_cubes,
    test_ids_are_per_cube_and_follow_upserts_and_deletes,
    test_ids_include_docs_of_every_status,
    test_search_is_confined_to_its_cubes_activated_docs_and_the_filter,
    test_search_live_at_leaves_expired_documents_out_before_ranking,
    test_select_live_at_leaves_expired_documents_out_of_the_page_and_the_total,
    test_select_pages_the_cubes_activated_docs_that_pass_the_filter_oldest_first,
    test_text_search_finds_a_cjk_word_inside_a_sentence,
    test_text_search_finds_a_just_upserted_item_in_its_cube_only,
    test_text_search_forgets_deleted_items,
    test_text_search_needs_every_word_and_honours_the_limit,
    test_text_search_reads_query_syntax_as_plain_words,
    test_text_search_returns_activated_items_only,
    test_text_search_sees_only_the_latest_text_of_a_reupserted_item,
    test_upsert_overwrites_the_previous_doc_of_that_id,
    test_upsert_twice_by_the_same_id_keeps_one_doc,
)
from tests.contract.test_queue_contract import (  # noqa: F401 - collected here against SQS FIFO
    test_a_cubes_messages_are_delivered_in_send_order,
    test_every_sent_message_is_delivered_once_and_whole,
    test_same_task_and_cube_sent_twice_is_delivered_once,
    test_sending_nothing_sends_nothing,
)
from tests.realserver.conftest import Queues


def _drain_sqs(queues: Queues) -> list[QueuedAdd]:
    """Receive everything, one group head at a time as FIFO allows, deleting as Lambda would."""
    taken: list[QueuedAdd] = []
    while True:
        got = queues.sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if not got:
            return taken
        taken += [QueuedAdd.model_validate_json(m["Body"]) for m in got]
        queues.sqs.delete_message_batch(
            QueueUrl=queues.url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)],
        )


@pytest.fixture
def queue(queues: Queues) -> QueueUnderTest:
    return QueueUnderTest(SqsQueue(queues.url, sqs=queues.sqs), lambda: _drain_sqs(queues))


def _opensearch(url: str, name: str) -> OpenSearchIndex:
    # osmem-server has no k-NN engine: text and filters run there, the k-NN body is pinned in tests/unit.
    index = OpenSearchIndex(url, index=name, service="es", auth="none", dimension=3, vector_search=False)
    index.bootstrap()
    return index


@pytest.fixture
def index(search_url: str) -> OpenSearchIndex:
    return _opensearch(search_url, f"contract-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def text_index(index: OpenSearchIndex) -> OpenSearchIndex:
    return index


@pytest.fixture
def open_index(search_url: str) -> Callable[[], Any]:
    name = f"contract-{uuid.uuid4().hex[:8]}"
    return lambda: _opensearch(search_url, name)
