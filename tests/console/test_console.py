"""The web console as a person uses it, in Chromium against `memcube serve` with keys on: sign in
with a key, watch an add complete, read and search the cube, open a merged memory's history and
undo it, delete with the receipt, grant a reader, redrive a dead letter as an operator; a user who
may not read a cube sees nothing of it; the page's CSP stops markup injection. Each page's
screenshot goes to docs/console/."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.console.conftest import Console, shot, sign_in
from tests.e2e.conftest import Server

pytestmark = pytest.mark.timeout(300)

TEXT = "Alice moved to Lisbon in March and works as a nurse at the Santa Maria hospital by the river."
EDITED = TEXT.replace("nurse", "senior nurse")
TRIPS = [
    ("porto-weekend", "4-04", "We took the train to Porto and ate francesinha by the Douro."),
    ("porto-weekend", "4-05", "On Sunday we crossed the Dom Luis bridge on foot at sunset."),
    ("sintra-day", "5-17", "Sintra was foggy; the Pena palace looked like a painted cake."),
    ("work", "6-02", "Alice started night shifts at the hospital in June."),
    ("work", "6-20", "The ward got two new nurses, so Alice's shifts are shorter."),
]
KB_TEXT = "The team meets every Monday at nine in room 4 to plan the week's releases."


def add(console: Console, user: str, body: dict[str, object]) -> str:
    task_id: str = console.server.add_ok({"user_id": user, **body}, headers=console.headers(user))["task_id"]
    return task_id


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Console pages").get_by_role("link", name=name, exact=True).click()


def task_row(page: Page, task_id: str) -> Locator:
    return page.locator(f'tr[data-task="{task_id}"]')


def test_a_user_watches_an_add_searches_undoes_a_merge_deletes_and_grants(console: Console, page: Page) -> None:
    server, alice = console.server, console.headers("alice")
    server.http.post(
        "/product/create_cube", json={"user_id": "alice", "cube_id": "kb-team", "readers": ["bob"]}, headers=alice
    ).raise_for_status()
    assert f"web console on {console.url}" in server.output()  # what `make run` prints
    page.goto(console.url)
    shot(page, "signin")
    sign_in(page, console, "alice")
    key = console.keys["alice"]
    assert key not in page.url
    assert page.evaluate("sessionStorage.getItem('memcube.key')") == key
    assert page.evaluate("localStorage.length") == 0

    # Tasks: an add through the API goes from waiting to completed on the page, live.
    nav(page, "Tasks")
    said = [{"role": "user", "content": TEXT, "chat_time": "2026-03-10T09:00:00Z"}]
    first = add(console, "alice", {"messages": said, "session_id": "move", "custom_tags": ["move"]})
    expect(task_row(page, first).locator(".badge").first).to_have_text("completed", timeout=30_000)
    said = [{"role": "user", "content": EDITED, "chat_time": "2026-03-12T10:00:00Z"}]
    second = add(console, "alice", {"messages": said, "session_id": "work", "custom_tags": ["work"]})
    expect(task_row(page, second).locator(".badge").first).to_have_text("completed", timeout=30_000)
    expect(task_row(page, second)).to_contain_text("merged")
    add(console, "alice", {"messages": KB_TEXT, "writable_cube_ids": ["kb-team"], "session_id": "planning"})
    [outcome] = server.wait("alice", second)["cubes"][0]["outcomes"]
    survivor = outcome["memory_id"]
    shot(page, "tasks")

    # Cubes: the personal cube and the knowledge base, with counts and grants.
    nav(page, "Cubes")
    team = page.get_by_role("row", name=re.compile(r"^kb-team"))
    expect(team).to_contain_text("bob")
    expect(page.get_by_role("row", name=re.compile(r"^alice personal"))).to_contain_text("1")
    shot(page, "cubes")

    # Memories: the merged memory, its tags and session.
    nav(page, "Memories")
    expect(page.get_by_role("cell", name=re.compile("merged from"))).to_contain_text("works as a nurse")
    shot(page, "memories")

    # Search with the request's switches: relativity, source turns and event time on each hit.
    nav(page, "Search")
    page.get_by_label("Query").fill("where does Alice work as a nurse")
    page.get_by_role("button", name="Search", exact=True).click()
    hits = page.get_by_role("table", name=re.compile("Hits in alice"))
    expect(hits).to_contain_text("works as a nurse")
    expect(hits).to_contain_text("2026-03-10 09:00:00Z")
    expect(hits.get_by_role("meter")).to_have_count(1)
    shot(page, "search")

    # History: the merge with its diff and the linked item; undo restores what it replaced.
    hits.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name=re.compile("version 2"))).to_contain_text("merged")
    expect(page.locator(".diff ins").filter(has_text="senior")).to_have_count(1)
    expect(page.get_by_role("img", name=re.compile("Linked items"))).to_be_visible()
    shot(page, "history")
    page.get_by_role("button", name=re.compile("Undo the merged change of version 2")).click()
    expect(page.locator("#notice")).to_contain_text("Undid the merged change")
    expect(page.get_by_role("button", name="Nothing to undo")).to_be_disabled()
    assert server.total("alice", "alice") == 2  # the merged-in memory is its own item again

    # Delete: the erasure receipt is shown, and the store agrees.
    nav(page, "Memories")
    expect(page.get_by_role("button", name=re.compile("^Delete memory"))).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete memory {survivor}").click()
    expect(page.locator("#receipt")).to_contain_text("Erasure receipt: 1 memory deleted")
    assert server.total("alice", "alice") == 1
    shot(page, "delete")

    # Picture: memories by event time, one lane per session.
    for n, (session, day, text) in enumerate(TRIPS):
        body = {"messages": [{"role": "user", "content": text, "chat_time": f"2026-0{day}T1{n}:00:00Z"}]}
        add(console, "alice", {**body, "session_id": session, "async_mode": "sync"})
    nav(page, "Picture")
    expect(page.get_by_role("img", name=re.compile("by event time"))).to_be_visible()
    sessions = page.get_by_role("table", name="Sessions in this window")
    expect(sessions).to_contain_text("porto-weekend")
    expect(sessions).to_contain_text("sintra-day")
    shot(page, "picture")

    # Search again, narrowed by the filter (the search's filter language): one session's memories.
    nav(page, "Search")
    page.get_by_label("Query").fill("a day out by the river")
    page.get_by_label("Relativity ≥").fill("0")
    page.get_by_role("button", name="Search", exact=True).click()
    filters = page.get_by_role("form", name="Filter")
    filters.get_by_label("Session").fill("sintra-day")
    filters.get_by_role("button", name="Apply").click()
    hits = page.get_by_role("table", name=re.compile("Hits in alice"))
    expect(hits).to_contain_text("Pena palace")
    expect(hits.get_by_role("row")).to_have_count(2)  # the header and the one hit

    # Every status: the stored items page by page, the server filtering each page. The Search page
    # has a "Filter" form too: wait for the Memories page before filling its form.
    nav(page, "Memories")
    expect(page.get_by_role("heading", name=re.compile("^Memories of"))).to_be_visible()
    filters = page.get_by_role("form", name="Filter")
    filters.get_by_label("Session").fill("porto-weekend")
    filters.get_by_label("Status").select_option("all")
    filters.get_by_role("button", name="Apply").click()
    stored = page.get_by_role("table", name="Stored items, every status")
    expect(stored.get_by_role("row")).to_have_count(3)
    expect(stored).to_contain_text("Dom Luis bridge")

    # Grants: the owner grants carol read on the knowledge base from its row.
    nav(page, "Cubes")
    team = page.get_by_role("row", name=re.compile(r"^kb-team"))
    team.get_by_label("User").fill("carol")
    team.get_by_role("button", name="Grant").click()
    expect(page.get_by_role("row", name=re.compile(r"^kb-team"))).to_contain_text("bob, carol")
    carol = server.http.get("/product/list_cubes", headers=console.headers("carol")).json()["data"]["cubes"]
    assert [c["cube_id"] for c in carol] == ["carol", "kb-team"]

    # Sign out: the key leaves the tab.
    page.get_by_role("button", name="Sign out").click()
    assert page.evaluate("sessionStorage.length") == 0


def test_an_operator_sees_a_dead_letter_with_its_reason_and_redrives_it(console: Console, page: Page) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 not really a PDF").decode()
    part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}", "filename": "notes.pdf"}}
    task_id = add(console, "alice", {"messages": [{"role": "user", "content": [part]}]})
    assert console.server.wait("alice", task_id)["status"] == "failed"

    sign_in(page, console, "alice")
    nav(page, "Dead letters")
    expect(page.locator("main")).to_contain_text("Operators only")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, console, "root")
    nav(page, "Dead letters")
    letters = page.get_by_role("table", name=re.compile("Dead letters"))
    expect(letters).to_contain_text("notes.pdf: the PDF cannot be read")
    expect(letters).to_contain_text(task_id)
    shot(page, "dead-letters")
    page.get_by_role("checkbox").first.check()
    page.get_by_role("button", name="Redrive selected").click()
    expect(page.locator("#notice")).to_contain_text("Redrove 1 dead letter(s)")


def test_a_user_who_may_not_read_a_cube_sees_nothing_of_it(console: Console, page: Page) -> None:
    secret = "Alice's bank PIN hint is the name of her first cat, Mittens."
    task_id = add(console, "alice", {"messages": secret, "session_id": "private"})
    console.server.wait("alice", task_id)
    [item] = console.server.items("alice", "alice")

    # Signed in with the keyboard alone: the page's heading has focus, Tab reaches the key, Enter submits.
    page.goto(console.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(console.keys["bob"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Cubes")).to_be_focused()  # focus follows the page
    expect(page.get_by_role("table", name="Readable cubes")).not_to_contain_text("alice")
    for route in (
        "#/memories/alice",
        "#/memories/alice?status=all",
        f"#/memory/{item['id']}",
        "#/search/alice?q=bank+PIN+cat&cubes=alice",
        "#/picture/alice",
    ):
        page.goto(f"{console.url}{route}")
        expect(page.locator("#alert")).to_contain_text(re.compile("40[34]"))
        assert "Mittens" not in page.content(), route
        assert "private" not in page.locator("main").inner_text(), route
    page.goto(f"{console.url}#/tasks")
    expect(page.locator("main")).to_contain_text("No tasks yet")


def test_a_memory_holding_markup_is_shown_as_text_and_the_csp_refuses_markup_sinks(
    console: Console, page: Page
) -> None:
    markup = "<img src=x onerror=\"document.title='pwned'\"> <b>bold claim</b> about tea"
    task_id = add(console, "alice", {"messages": markup})
    console.server.wait("alice", task_id)
    sign_in(page, console, "alice")
    nav(page, "Memories")
    expect(page.get_by_role("cell", name=re.compile("bold claim"))).to_contain_text("<b>bold claim</b>")
    assert page.locator("main img").count() == 0 and "pwned" not in page.title()
    refused = page.evaluate(
        "() => { try { document.body.innerHTML = '<b>x</b>'; return 'assigned'; } catch (e) { return e.name; } }"
    )
    assert refused == "TypeError"  # Trusted Types: no string ever becomes markup on this page


def test_out_of_the_box_with_keys_off_a_user_id_signs_in_and_no_key_is_kept(tmp_path: Path, page: Page) -> None:
    server = Server(tmp_path / "open", 1, tmp_path / "open.log").wait_healthy()  # `make run`: keys off
    try:
        server.add_ok({"user_id": "ann", "messages": "Ann keeps bees on her roof in Ghent.", "async_mode": "sync"})
        page.goto(f"{server.url}/console")
        page.get_by_label("User id").fill("ann")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("row", name=re.compile(r"^ann personal"))).to_contain_text("1")
        assert page.evaluate("sessionStorage.getItem('memcube.key')") is None
        nav(page, "Memories")
        expect(page.get_by_role("cell", name=re.compile("keeps bees"))).to_be_visible()
    finally:
        server.stop(grace=5.0)
