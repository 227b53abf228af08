"""User commands of `memcube`: add, status, search, get, delete, export and import, against a
running server (`memcube serve` locally, or the stack's ApiUrl on AWS) through `MemcubeClient`.

Every command takes `--url` ($MEMCUBE_URL), `--user` ($MEMCUBE_USER) and `--api-key`
($MEMCUBE_API_KEY, sent as `Authorization: Token <key>`).
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from memcube_client.client import ApiError, MemcubeClient

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

F = TypeVar("F", bound=Callable[..., Any])
IMPORT_BATCH = 100
IMPORT_BATCH_BYTES = 768 * 1024
"""Import requests stay under the API's 1 MiB body limit."""


def _connection(fn: F) -> F:
    fn = click.option("--api-key", envvar="MEMCUBE_API_KEY", default=None, help="API key ($MEMCUBE_API_KEY).")(fn)
    fn = click.option("--user", "user_id", envvar="MEMCUBE_USER", required=True, help="Your user id ($MEMCUBE_USER).")(
        fn
    )
    fn = click.option(
        "--url",
        envvar="MEMCUBE_URL",
        default="http://127.0.0.1:8000",
        show_default=True,
        help="The server ($MEMCUBE_URL): a local `memcube serve` or the stack's ApiUrl.",
    )(fn)
    return fn


def _client(url: str, api_key: str | None) -> MemcubeClient:
    return MemcubeClient(url, api_key=api_key)


def _progress(length: int, label: str) -> ProgressBar[int]:
    """A progress bar on stderr, so stdout stays clean for the command's output."""
    return click.progressbar(length=length, label=label, show_pos=True, file=sys.stderr)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _json_option(raw: str | None, name: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from exc


def _guarded(fn: F) -> F:
    """Turn the server's refusals into a clean CLI error (exit code 1, its message)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            raise click.ClickException(f"server answered {exc.status}: {exc.message}") from exc

    return run  # type: ignore[return-value]


def conversations(path: Path) -> Iterator[dict[str, Any]]:
    """Add bodies (without user_id) from a file: JSON Lines with one conversation per line, or a
    JSON array of conversations, or one conversation. A conversation is a list of messages or an
    object with `messages` and any other add field (session_id, custom_tags, info, ...)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        values = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        loaded = json.loads(text)
        one = isinstance(loaded, dict) or (isinstance(loaded, list) and all(_is_message(m) for m in loaded))
        values = [loaded] if one else list(loaded)
    for n, value in enumerate(values):
        if isinstance(value, list):
            yield {"messages": value}
        elif isinstance(value, dict) and "messages" in value:
            yield dict(value)
        else:
            raise click.ClickException(
                f"{path}: conversation {n} is neither a list of messages nor an object with messages"
            )


def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and "role" in value and "messages" not in value


@click.command()
@_connection
@click.argument("text", required=False)
@click.option(
    "--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="JSON/JSONL conversations."
)
@click.option("--cube", "cubes", multiple=True, help="Target cube (repeat for several; default: your own).")
@click.option("--session", "session_id", default=None, help="Session id for every conversation.")
@click.option("--tag", "tags", multiple=True, help="Custom tag (repeatable).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the tasks and summarize outcomes.")
@_guarded
def add(
    *,
    url: str,
    user_id: str,
    api_key: str | None,
    text: str | None,
    file: Path | None,
    cubes: tuple[str, ...],
    session_id: str | None,
    tags: tuple[str, ...],
    wait: bool,
) -> None:
    """Add TEXT, or every conversation of --file, asynchronously; then wait for the tasks."""
    if (text is None) == (file is None):
        raise click.UsageError("give TEXT or --file (one of them)")
    bodies = list(conversations(file)) if file else [{"messages": text}]
    defaults = _add_defaults(user_id, cubes, session_id, tags)
    with _client(url, api_key) as client:
        task_ids = _submit(client, [defaults | body for body in bodies])
        if not wait:
            click.echo("\n".join(task_ids))
            return
        tasks = _wait_for(client, user_id, task_ids)
    if not _summarize(tasks):
        raise SystemExit(1)


def _add_defaults(
    user_id: str, cubes: tuple[str, ...], session_id: str | None, tags: tuple[str, ...]
) -> dict[str, Any]:
    """The add fields the options set for every conversation (a conversation's own fields win)."""
    defaults: dict[str, Any] = {"user_id": user_id, "async_mode": "async"}
    if cubes:
        defaults["writable_cube_ids"] = list(cubes)
    if session_id:
        defaults["session_id"] = session_id
    if tags:
        defaults["custom_tags"] = list(tags)
    return defaults


def _submit(client: MemcubeClient, bodies: list[dict[str, Any]]) -> list[str]:
    task_ids: list[str] = []
    with _progress(len(bodies), "submitting") as bar:
        for body in bodies:
            task_ids.append(client.add(body)["task_id"])
            bar.update(1)
    return task_ids


def _wait_for(client: MemcubeClient, user_id: str, task_ids: list[str]) -> list[dict[str, Any]]:
    tasks = []
    with _progress(len(task_ids), "processing") as bar:
        for task_id in task_ids:
            tasks.append(client.wait(user_id, task_id))
            bar.update(1)
    return tasks


def _summarize(tasks: list[dict[str, Any]]) -> bool:
    """Print the tasks' states, their outcomes and every part not completed; False if a task failed."""
    states = Counter(t["status"] for t in tasks)
    outcomes = Counter(o["outcome"] for t in tasks for part in t["cubes"] for o in part["outcomes"])
    click.echo(f"{len(tasks)} tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    click.echo("memories: " + (", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "none"))
    for task in tasks:
        for part in task["cubes"]:
            if part["status"] != "completed":
                click.echo(
                    f"  {task['task_id']} {part['cube_id']}: {part['status']} {part.get('error') or ''}".rstrip()
                )
    return not states.get("failed")


@click.command()
@_connection
@click.argument("task_id", required=False)
@_guarded
def status(url: str, user_id: str, api_key: str | None, task_id: str | None) -> None:
    """Status of TASK_ID per cube and per memory (or of your recent tasks)."""
    with _client(url, api_key) as client:
        _echo_json(client.status(user_id, task_id))


@click.command()
@_connection
@click.argument("query")
@click.option("--cube", "cubes", multiple=True, help="Cube to search (repeatable; default: your own).")
@click.option("--top-k", type=int, default=10, show_default=True)
@click.option("--relativity", type=float, default=None, help="Minimum relevance (server default 0.45).")
@click.option("--filter", "filter_json", default=None, help='A filter as JSON, e.g. \'{"custom_tags": "travel"}\'.')
@click.option("--session", "session_id", default=None, help="Boost this session's memories.")
@_guarded
def search(
    *,
    url: str,
    user_id: str,
    api_key: str | None,
    query: str,
    cubes: tuple[str, ...],
    top_k: int,
    relativity: float | None,
    filter_json: str | None,
    session_id: str | None,
) -> None:
    """Search your cubes; prints the MemOS `text_mem` blocks as JSON."""
    body: dict[str, Any] = {"user_id": user_id, "query": query, "top_k": top_k}
    if cubes:
        body["readable_cube_ids"] = list(cubes)
    if relativity is not None:
        body["relativity"] = relativity
    if filter_json is not None:
        body["filter"] = _json_option(filter_json, "--filter")
    if session_id:
        body["session_id"] = session_id
    with _client(url, api_key) as client:
        _echo_json(client.search(body)["text_mem"])


@click.command()
@_connection
@click.argument("memory_id")
@_guarded
def get(url: str, user_id: str, api_key: str | None, memory_id: str) -> None:
    """One memory by id, as JSON."""
    with _client(url, api_key) as client:
        _echo_json(client.get(memory_id, user_id))


@click.command()
@_connection
@click.argument("memory_id")
@_guarded
def history(url: str, user_id: str, api_key: str | None, memory_id: str) -> None:
    """MEMORY_ID's versions, newest first: merges, corrections, archivals, undos."""
    with _client(url, api_key) as client:
        _echo_json(client.history(memory_id, user_id))


@click.command()
@_connection
@click.argument("memory_id")
@_guarded
def undo(url: str, user_id: str, api_key: str | None, memory_id: str) -> None:
    """Undo MEMORY_ID's latest merge or correction, restoring the previous active item(s)."""
    with _client(url, api_key) as client:
        _echo_json(client.undo(memory_id, user_id))


@click.command()
@_connection
@click.option("--id", "memory_ids", multiple=True, help="Memory id (repeatable).")
@click.option("--file-id", "file_ids", multiple=True, help="Delete the memories read from this file (repeatable).")
@click.option("--filter", "filter_json", default=None, help="Delete what matches this filter (JSON).")
@click.option("--session", "session_id", default=None, help="Delete this session's memories (or narrow --filter).")
@click.option("--cube", "cubes", multiple=True, help="Cube to delete from (repeatable; default: your own).")
@click.option("--erase-my-data", is_flag=True, help="Erase everything you wrote in the cubes, queued adds included.")
@_guarded
def delete(
    *,
    url: str,
    user_id: str,
    api_key: str | None,
    memory_ids: tuple[str, ...],
    file_ids: tuple[str, ...],
    filter_json: str | None,
    session_id: str | None,
    cubes: tuple[str, ...],
    erase_my_data: bool,
) -> None:
    """Delete memories (one selector), or erase your data; prints the receipt."""
    body: dict[str, Any] = {"user_id": user_id}
    if cubes:
        body["writable_cube_ids"] = list(cubes)
    if memory_ids:
        body["memory_ids"] = list(memory_ids)
    if file_ids:
        body["file_ids"] = list(file_ids)
    if filter_json is not None:
        body["filter"] = _json_option(filter_json, "--filter")
    if session_id:
        body["session_id"] = session_id
    if (len(body) == 1 + bool(cubes)) != erase_my_data:
        raise click.UsageError("give a selector (--id, --file-id, --filter, --session) or --erase-my-data, not both")
    with _client(url, api_key) as client:
        _echo_json(client.delete(body))


@click.command("delete-cube")
@_connection
@click.argument("cube_id")
@click.confirmation_option(prompt="Erase every memory of this cube, whoever wrote it?")
@_guarded
def delete_cube(url: str, user_id: str, api_key: str | None, cube_id: str) -> None:
    """Erase a whole cube; prints the receipt."""
    with _client(url, api_key) as client:
        _echo_json(client.delete_cube(user_id, cube_id))


@click.command()
@_connection
@click.argument("cube_id")
@click.option(
    "-o", "--output", type=click.File("w", encoding="utf-8"), default="-", help="JSONL file (default: stdout)."
)
@_guarded
def export(url: str, user_id: str, api_key: str | None, cube_id: str, output: Any) -> None:
    """Write every item of CUBE_ID (any status, no embeddings) as JSON Lines."""
    count = 0
    with _client(url, api_key) as client:
        for item in client.export(user_id, cube_id):
            output.write(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    click.echo(f"exported {count} memories of {cube_id}", err=True)


@click.command("import")
@_connection
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cube", "cube_id", required=True, help="The cube to import into.")
@_guarded
def import_(url: str, user_id: str, api_key: str | None, file: Path, cube_id: str) -> None:
    """Import a JSONL export into --cube (ids kept when it is the exported cube)."""
    items = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    totals: Counter[str] = Counter()
    with _client(url, api_key) as client, _progress(len(items), "importing") as bar:
        for batch in _batches(items):
            result = client.import_items(user_id, cube_id, batch)
            for key in ("imported", "existing", "duplicates"):
                totals[key] += len(result[key])
            bar.update(len(batch))
    click.echo(f"{totals['imported']} imported, {totals['existing']} already there, {totals['duplicates']} duplicates")


def _batches(items: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for item in items:
        weight = len(json.dumps(item, ensure_ascii=False).encode())
        if batch and (len(batch) == IMPORT_BATCH or size + weight > IMPORT_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += weight
    if batch:
        yield batch


@click.command()
@_connection
@click.argument("query")
@click.option("--session", "session_id", default=None, help="The conversation (default: default_session).")
@click.option("--cube", "cubes", multiple=True, help="Cube to answer from (repeatable; default: your own).")
@click.option("--no-remember", is_flag=True, help="Do not add the exchange as memory.")
@click.option("--threshold", type=float, default=None, help="Least relevance of a memory given to the model.")
@_guarded
def chat(
    *,
    url: str,
    user_id: str,
    api_key: str | None,
    query: str,
    session_id: str | None,
    cubes: tuple[str, ...],
    no_remember: bool,
    threshold: float | None,
) -> None:
    """Ask a question answered from your memories (streamed); the cited memory ids follow the answer."""
    body: dict[str, Any] = {"user_id": user_id, "query": query, "add_message_on_answer": not no_remember}
    given = {"session_id": session_id, "readable_cube_ids": list(cubes) or None, "threshold": threshold}
    body |= {k: v for k, v in given.items() if v is not None}
    with _client(url, api_key) as client:
        for event in client.chat_stream(body):
            if event["type"] == "text":
                click.echo(event["data"], nl=False)
            elif event["type"] == "error":
                raise click.ClickException(f"the answer broke off: {event['content']}")
            elif event["type"] == "end":
                end = event["data"]
                click.echo()
                for ref in end["references"]:
                    click.echo(f"[{ref['reference_number']}] {ref['memory_id']}: {ref['memory']}", err=True)
                if end["task_id"]:
                    click.echo(f"exchange added as memory: task {end['task_id']}", err=True)


@click.command("messages")
@_connection
@click.option("--session", "session_id", default=None, help="The conversation (default: your latest).")
@click.option("--limit", type=int, default=20, show_default=True, help="The last N messages.")
@_guarded
def messages(url: str, user_id: str, api_key: str | None, session_id: str | None, limit: int) -> None:
    """The last messages of a conversation, as JSON."""
    with _client(url, api_key) as client:
        _echo_json(client.get_message(user_id, session_id, limit)["messages"])


@click.command()
@_connection
@click.argument("memory_id")
@click.option("--text", "memory", default=None, help="The memory's new text (re-embedded).")
@click.option("--tag", "tags", multiple=True, help="Replace the memory's tags (repeatable).")
@click.option("--info", "info_json", default=None, help="Replace the memory's info (a JSON object).")
@click.option("--cube", "cube_id", default=None, help="The cube the memory must be in.")
@_guarded
def edit(
    *,
    url: str,
    user_id: str,
    api_key: str | None,
    memory_id: str,
    memory: str | None,
    tags: tuple[str, ...],
    info_json: str | None,
    cube_id: str | None,
) -> None:
    """Edit MEMORY_ID (new text, tags or info) as a new version; `memcube undo` reverts it."""
    info = _json_option(info_json, "--info")
    if memory is None and not tags and info is None:
        raise click.UsageError("give --text, --tag or --info")
    with _client(url, api_key) as client:
        edited = client.update_memory(
            memory_id, user_id, memory=memory, tags=list(tags) or None, info=info, mem_cube_id=cube_id
        )
        _echo_json(edited)


USER_COMMANDS = [add, status, search, get, history, undo, edit, delete, delete_cube, export, import_, chat, messages]


@click.command("mcp")
@click.option(
    "--url",
    envvar="MEMCUBE_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The server ($MEMCUBE_URL): a local `memcube serve` or the stack's ApiUrl.",
)
@click.option(
    "--user",
    "user_id",
    envvar=["MEMCUBE_USER_ID", "MEMCUBE_USER"],
    required=True,
    help="The user the tools act as ($MEMCUBE_USER_ID, or $MEMCUBE_USER).",
)
@click.option("--api-key", envvar="MEMCUBE_API_KEY", default=None, help="API key ($MEMCUBE_API_KEY); never printed.")
def mcp(url: str, user_id: str, api_key: str | None) -> None:
    """Serve memcube's memory tools to an MCP client (a desktop assistant, an IDE agent) over stdio.

    Every tool is a call of the HTTP API at --url as --user with --api-key: the API's own checks
    apply, and its refusals come back as tool errors. Logs go to stderr; stdout is the protocol."""
    try:
        from memcube_client.mcp_server import serve_stdio
    except ImportError as exc:
        raise click.ClickException(
            f"the MCP server needs the `mcp` package ({exc}): pip install 'memcube[local]'"
        ) from exc
    serve_stdio(url, user_id, api_key)


USER_COMMANDS.append(mcp)
