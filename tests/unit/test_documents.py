"""Files in document mode: chunked with their file id and name in the sources, PDFs read on the
worker (never by the API), duplicates refused inside the cube, deletable by file id."""

from __future__ import annotations

import base64
import itertools
import subprocess
import sys
from typing import Any

import pytest

from memcube.adapters.documents import FileTextReader
from memcube.domain.commands import DeleteMemories
from memcube.domain.errors import InvalidRequest, UnreadableFile
from memcube.domain.ingest import Verdict
from memcube.domain.model import MemoryItem, Principal, SourceMessage, TaskState
from memcube.domain.reader import CHUNK_TOKENS, count_tokens, document, read
from memcube_api.schemas.product import AddRequest, to_command
from tests.pdfs import pdf_with_pages
from tests.services import deletion_service
from tests.unit.world import World as BaseWorld

ALICE = Principal(user_id="alice")


class World(BaseWorld):
    def __init__(self) -> None:
        super().__init__(documents=FileTextReader())
        self.deleter = deletion_service(self.stores, self.index, self.queue)

    def add_files(self, *files: dict[str, Any], cube: str = "kb-docs") -> str:
        task_id = self.submit([{"type": "file", "file": f} for f in files], writable_cube_ids=[cube])
        assert self.deliver() == [Verdict.DONE]
        return task_id

    def items(self, cube: str = "kb-docs") -> list[MemoryItem]:
        return self.active(cube)


@pytest.fixture
def world() -> World:
    return World()


def pdf_url(data: bytes) -> str:
    return "data:application/pdf;base64," + base64.b64encode(data).decode()


def long_text(paragraphs: int = 6, sentences: int = 30) -> str:
    return "\n\n".join(
        " ".join(f"Paragraph {p} sentence {s} describes item {p * 100 + s}." for s in range(sentences))
        for p in range(paragraphs)
    )


def test_a_file_becomes_chunks_that_cover_its_text_within_the_chunk_size() -> None:
    text = long_text(paragraphs=3, sentences=90)  # 720 tokens a paragraph: each needs two chunks
    unit = SourceMessage(type="file", content=text, file_id="kb:1", filename="guide.md")
    chunks = document(unit)
    assert len(chunks) == 6
    assert all(count_tokens(c.text) <= CHUNK_TOKENS for c in chunks)
    sentences = {f"item {p * 100 + s}." for p in range(3) for s in range(90)}
    assert sentences == {s for s in sentences if any(s in c.text for c in chunks)}  # nothing is lost
    assert [c.key for c in chunks] == [f"guide.md (part {n} of {len(chunks)})" for n in range(1, len(chunks) + 1)]
    for chunk in chunks:
        [source] = chunk.sources
        assert (source.type, source.file_id, source.filename, source.content) == (
            "file",
            "kb:1",
            "guide.md",
            chunk.text,
        )
        assert chunk.memory_type == "LongTermMemory"


def test_chunks_overlap_so_a_passage_on_a_boundary_is_whole_in_one() -> None:
    text = " ".join(f"Sentence {n} is here." for n in range(400))  # one paragraph, no line breaks
    chunks = document(SourceMessage(type="file", content=text, filename="a.txt"))
    for left, right in itertools.pairwise(chunks):
        last = left.text.rsplit("Sentence ", 1)[1]
        assert f"Sentence {last}" in right.text  # the last sentence of a chunk starts the next one's overlap


def test_chinese_text_is_chunked_at_its_full_width_sentence_marks() -> None:
    text = "".join(f"第{n}条规定适用于所有员工。" for n in range(300))
    chunks = document(SourceMessage(type="file", content=text, filename="规定.txt"))
    assert len(chunks) > 1 and all(count_tokens(c.text) <= CHUNK_TOKENS for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)


def test_a_conversation_and_a_file_in_one_add_are_read_apart() -> None:
    chat = SourceMessage(type="chat", role="user", content="Please file the attached policy.")
    file = SourceMessage(type="file", role="user", content="Policy text.", file_id="f1", filename="p.txt")
    [talk, doc] = read([chat, file])
    assert talk.text == "user: Please file the attached policy." and not talk.from_file
    assert doc.text == "Policy text." and doc.from_file and doc.key == "p.txt"


def test_file_memories_keep_the_file_id_and_name_and_come_from_a_file(world: World) -> None:
    world.add_files({"file_data": long_text(), "file_id": "kb-docs:aa", "filename": "guide.md"})
    items = world.items()
    assert len(items) > 1
    for item in items:
        assert item.metadata.source == "file" and item.metadata.memory_type == "LongTermMemory"
        assert [(s.file_id, s.filename) for s in item.metadata.sources] == [("kb-docs:aa", "guide.md")]
        assert all(s.data is None for s in item.metadata.sources)


def test_a_pdf_is_read_on_the_worker_and_its_text_stored_in_chunks(world: World) -> None:
    data = pdf_with_pages([["Expense rules.", "Software is reimbursed up to 600 euros."], ["Keep receipts."]])
    part = {"type": "file", "file": {"file_data": pdf_url(data), "file_id": "kb-docs:p", "filename": "x.pdf"}}
    req = AddRequest.model_validate({"user_id": "alice", "writable_cube_ids": ["kb-docs"], "messages": [part]})
    [unit] = to_command(req).messages
    assert (unit.content, unit.data) == ("", pdf_url(data))  # the API passes the bytes on, unread
    world.add_files({"file_data": pdf_url(data), "file_id": "kb-docs:p", "filename": "x.pdf"})
    [item] = world.items()
    assert "Software is reimbursed up to 600 euros." in item.memory and "Keep receipts." in item.memory
    assert item.metadata.sources[0].file_id == "kb-docs:p"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.4\nnot really a pdf", "the PDF cannot be read"),
        (pdf_with_pages([[]]), "the PDF has no text layer"),
        (pdf_with_pages([["A" * 200] * 40_000], compressed=True), "the limit per stream"),
    ],
    ids=["not a pdf", "no text", "decompression bomb"],
)
def test_an_unreadable_pdf_is_dead_lettered_at_once_with_its_reason(world: World, data: bytes, reason: str) -> None:
    task_id = world.add_files({"file_data": pdf_url(data), "file_id": "kb-docs:bad", "filename": "scan.pdf"})
    record = world.stores.tasks.get_task(task_id)
    assert record is not None and record.status is TaskState.FAILED
    [part] = record.parts
    assert part.error is not None and part.error.startswith("scan.pdf: ") and reason in part.error
    [letter] = world.stores.dead_letters.list_dead_letters()
    assert letter.attempts == 1 and reason in letter.reason
    assert world.items() == []


def test_a_pdf_whose_text_is_over_the_bound_is_refused_whatever_its_size() -> None:
    pdf = pdf_with_pages([["A line of the report."] * 40] * 3)
    assert "report" in FileTextReader().text(pdf, "application/pdf")
    with pytest.raises(UnreadableFile, match="more than 1000 bytes of text; split it"):
        FileTextReader(max_text_bytes=1000).text(pdf, "application/pdf")


def test_the_same_file_again_is_a_duplicate_in_its_cube(world: World) -> None:
    file = {"file_data": long_text(), "file_id": "kb-docs:aa", "filename": "guide.md"}
    world.add_files(file)
    first = {i.id for i in world.items()}
    again = world.add_files(file)
    record = world.stores.tasks.get_task(again)
    assert record is not None
    assert {o.outcome for o in record.parts[0].outcomes} == {"duplicate"}
    assert {i.id for i in world.items()} == first


def test_deleting_by_file_id_removes_that_files_memories_only(world: World) -> None:
    world.add_files(
        {"file_data": long_text(paragraphs=3), "file_id": "kb-docs:one", "filename": "one.md"},
        {"file_data": "The other file is about parking.", "file_id": "kb-docs:two", "filename": "two.md"},
    )
    of_one = [i for i in world.items() if i.metadata.sources[0].file_id == "kb-docs:one"]
    assert len(of_one) > 1
    req = DeleteMemories(user_id="alice", cube_ids=["kb-docs"], file_ids=["kb-docs:one"])
    receipt = world.deleter.delete(req, ALICE)
    assert receipt.memories == len(of_one)
    [left] = world.items()
    assert left.metadata.sources[0].file_id == "kb-docs:two"
    assert set(world.index.docs) == {left.id}


def test_file_text_has_its_own_budget_beside_the_conversation() -> None:
    big = "x" * 600_000  # over the conversation budget, within the files' one
    cmd = to_command(
        AddRequest.model_validate({"user_id": "a", "messages": [{"type": "file", "file": {"file_data": big}}]})
    )
    assert cmd.messages[0].content == big
    with pytest.raises(InvalidRequest, match="messages: at most 2097152 bytes of files"):
        huge = [{"type": "file", "file": {"file_data": "y" * 2_100_000}}]
        to_command(AddRequest.model_validate({"user_id": "a", "messages": huge}))
    with pytest.raises(InvalidRequest, match="messages: at most 524288 bytes of text"):
        to_command(AddRequest.model_validate({"user_id": "a", "messages": big}))


def test_the_api_never_imports_the_pdf_reader() -> None:
    """pypdf stays off the API Lambda's import path, even while it accepts a PDF."""
    script = """
import base64, sys
from tests.lambda_support import invoke, serving, v2_event
from tests.doubles import doubles_container
from tests.pdfs import pdf_with_pages
from tests.services import deletion_service
from tests.unit.world import World as BaseWorld
url = "data:application/pdf;base64," + base64.b64encode(pdf_with_pages([["hello"]])).decode()
body = {"user_id": "a", "messages": [{"type": "file", "file": {"file_data": url, "filename": "a.pdf"}}]}
c = doubles_container()
with serving(c):
    reply = invoke(v2_event("POST", "/product/add", body=body))
assert reply.status == 200, reply.body
assert c.queue.sent[0].messages[0].data == url
print("pypdf modules:", sorted(m for m in sys.modules if m.split(".")[0] == "pypdf"))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "pypdf modules: []"


def test_a_small_pdf_whose_page_inflates_past_the_stream_bound_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a PDF of a few KB whose one Flate page holds megabytes of text (a decompression bomb)
    bomb = pdf_with_pages([["A" * 200] * 40_000], compressed=True)
    assert len(bomb) < 100_000
    from pypdf import PageObject

    def never(*_: object, **__: object) -> str:
        raise AssertionError("the page was parsed")

    monkeypatch.setattr(PageObject, "extract_text", never)
    # When it is read with a bound per stream, Then it is refused naming the limit, unparsed
    with pytest.raises(
        UnreadableFile, match="page 1 has a content stream of more than 1000000 bytes once decompressed"
    ):
        FileTextReader(max_stream_bytes=1_000_000).text(bomb, "application/pdf")


def test_all_content_streams_of_a_pdf_share_one_bound() -> None:
    pdf = pdf_with_pages([["A line of the report."] * 40] * 3, compressed=True)
    assert "report" in FileTextReader().text(pdf, "application/pdf")
    with pytest.raises(UnreadableFile, match="content streams hold more than 2000 bytes once decompressed"):
        FileTextReader(max_content_bytes=2000).text(pdf, "application/pdf")


def test_reading_a_pdf_stops_at_its_time_budget_naming_it() -> None:
    pdf = pdf_with_pages([["A line of the report."] * 40] * 3, compressed=True)
    ticks = iter(range(1_000_000))  # a clock that advances one second each time it is read
    with pytest.raises(UnreadableFile, match="more than its time budget of 5 s"):
        FileTextReader(budget_seconds=5, clock=lambda: float(next(ticks))).text(pdf, "application/pdf")


def test_a_content_stream_in_a_filter_that_can_inflate_unboundedly_is_not_read() -> None:
    pdf = pdf_with_pages([["A line."]]).replace(b"<< /Length", b"<< /Filter /LZWDecode /Length", 1)
    with pytest.raises(UnreadableFile, match="compressed with /LZWDecode, which is not read"):
        FileTextReader().text(pdf, "application/pdf")
