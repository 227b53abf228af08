"""`memcube` command line: `serve` runs the embedded default (API + worker, one process); the
operator commands work on the storage directly; the user commands (`memcube_client.cli`) talk to a server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from memcube.settings import Settings

if TYPE_CHECKING:
    from memcube_local.wiring import LocalContainer


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@click.group()
@click.version_option(package_name="memcube")
def main() -> None:
    """memcube: a MemOS-compatible memory service."""


def _data_dir_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Embedded default: where the SQLite files live (default: $MEMCUBE_DATA_DIR or ~/.memcube).",
    )(fn)


def _container(data_dir: Path | None) -> LocalContainer:
    """The container for operator commands: MEMCUBE_BACKEND chooses (embedded by default)."""
    from memcube_local.wiring import LocalContainer

    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    return LocalContainer(settings)


@main.command()
@_data_dir_option
@click.option("--cube", "cube_id", default=None, help="Only this cube (default: every cube).")
def reindex(data_dir: Path | None, cube_id: str | None) -> None:
    """Rebuild the search index from the store (the system of record). Safe to repeat."""
    container = _container(data_dir)
    try:
        with click.progressbar(length=0, label="reindexing", show_pos=True) as bar:
            total = container.maintenance.reindex(cube_id, progress=bar.update)
        click.echo(f"reindexed {total} memories")
    finally:
        container.close()


@main.command()
@_data_dir_option
@click.option("--cube", "cube_id", required=True, help="The cube to check.")
@click.option("--repair", is_flag=True, help="Fix the differences (re-upsert or drop index documents).")
def reconcile(data_dir: Path | None, cube_id: str, repair: bool) -> None:
    """Compare the index with the store for one cube; exit 1 if they differ (and were not repaired)."""
    container = _container(data_dir)
    try:
        report = container.maintenance.reconcile(cube_id, repair=repair)
    finally:
        container.close()
    click.echo(
        f"cube {cube_id}: {len(report.missing_from_index)} missing from the index, "
        f"{len(report.not_in_store)} in the index but not the store, "
        f"{len(report.stale_in_index)} stale in the index" + (" (repaired)" if report.repaired else "")
    )
    if report.differences and not report.repaired:
        raise SystemExit(1)


@main.command("dead-letters")
@_data_dir_option
def dead_letters(data_dir: Path | None) -> None:
    """List dead-lettered messages with their reasons (one JSON object per line)."""
    container = _container(data_dir)
    try:
        for letter in container.dead_letters.list_dead_letters():
            click.echo(letter.model_dump_json(exclude={"body"}))
    finally:
        container.close()


@main.command("audit-cubes")
@_data_dir_option
def audit_cubes(data_dir: Path | None) -> None:
    """Report cubes planted in users' personal cube ids (data written before a user existed from
    their key): one JSON object per finding; exit 1 if there is any. Changes nothing."""
    from memcube.domain.cubes import planted_cubes

    container = _container(data_dir)
    try:
        findings = planted_cubes(container.directory, container.api_keys, container.memories.iter_memories(None))
    finally:
        container.close()
    for finding in findings:
        click.echo(json.dumps(finding))
    click.echo(f"{len(findings)} finding(s)", err=True)
    if findings:
        raise SystemExit(1)


@main.group()
def keys() -> None:
    """API keys (operators): create, list, revoke. Stored as salted digests; shown once."""


@keys.command("create")
@_data_dir_option
@click.option("--user", "user_id", required=True, help="The user the key acts for.")
@click.option(
    "--scope",
    type=click.Choice(["user", "service", "admin"]),
    default="user",
    show_default=True,
    help="service/admin keys may act for any user_id (for trusted backends).",
)
@click.option("--label", default="", help="A note on what the key is for.")
def keys_create(data_dir: Path | None, user_id: str, scope: str, label: str) -> None:
    """Create a key and print it (the only time it is shown)."""
    from memcube.domain.ids import check_id

    try:
        check_id(user_id, "--user")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--user") from exc
    container = _container(data_dir)
    try:
        key, plaintext = container.keys.create(user_id, scope, label)  # type: ignore[arg-type]
    finally:
        container.close()
    click.echo(plaintext)
    click.echo(f"key {key.key_id} for {key.user_id} ({key.scope}): store it now, it is not shown again", err=True)


@keys.command("list")
@_data_dir_option
@click.option("--user", "user_id", default=None, help="Only this user's keys.")
def keys_list(data_dir: Path | None, user_id: str | None) -> None:
    """Keys as JSON lines (ids, users, scopes, labels, dates; never secrets)."""
    container = _container(data_dir)
    try:
        for key in container.keys.list(user_id):
            click.echo(json.dumps(key.public()))
    finally:
        container.close()


@keys.command("revoke")
@_data_dir_option
@click.argument("key_id")
def keys_revoke(data_dir: Path | None, key_id: str) -> None:
    """Revoke KEY_ID: every request with it is refused (401) from then on."""
    from memcube.domain.errors import NotFound

    container = _container(data_dir)
    try:
        key = container.keys.revoke(key_id)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        container.close()
    click.echo(f"revoked {key.key_id} ({key.user_id}) at {key.revoked_at}")


@main.command("bootstrap-index")
def bootstrap_index() -> None:
    """Create the OpenSearch index with its mapping (aws backend; run once after deploying)."""
    container = _container(None)
    index = container.index
    bootstrap = getattr(index, "bootstrap", None)
    if bootstrap is None:
        raise click.ClickException("this backend's index needs no bootstrap (MEMCUBE_BACKEND=aws)")
    click.echo("created" if bootstrap() else "already exists")


@main.command()
@_data_dir_option
def doctor(data_dir: Path | None) -> None:
    """Probe the configured search index: does its k-NN query run, keep to the named cube, and
    filter before its limit? One JSON line per check; exit 1 if any failed.

    On AWS this is the check a deployment needs: the tests run every OpenSearch query but k-NN
    against an OpenSearch-API test server without vector search. Writes a few probe documents in
    two fresh `memcube-doctor-*` cubes and deletes them again.
    """
    import json

    from memcube.domain.doctor import probe_vector_search

    container = _container(data_dir)
    try:
        embedder = container.embedder
        checks = probe_vector_search(container.index, model_id=embedder.model_id, dimension=embedder.dimension)
    finally:
        container.close()
    for check in checks:
        click.echo(json.dumps({"check": check.name, "ok": check.ok, "detail": check.detail}))
    if not all(c.ok for c in checks):
        raise SystemExit(1)


@main.command()
@_data_dir_option
def redrive(data_dir: Path | None) -> None:
    """Replay dead-lettered messages (after fixing their cause). Safe to repeat.

    aws: moves the SQS DLQ back to the task queue. embedded: re-enqueues the store's dead letters
    that can still succeed (a schema-invalid message never can, and is reported instead).
    """
    container = _container(data_dir)
    try:
        settings = container.settings
        if settings.backend == "aws":
            if not settings.dead_letter_queue_url:
                raise click.ClickException("MEMCUBE_DEAD_LETTER_QUEUE_URL is not set (stack output DeadLetterQueueUrl)")
            moved = container.sqs_queue.redrive(settings.dead_letter_queue_url)
            click.echo(f"moved {moved} messages from the DLQ back to the task queue")
            return
        from memcube.domain.maintenance import redrive_dead_letters

        report = redrive_dead_letters(container.dead_letters, container.local_queue)
        click.echo(f"re-enqueued {report.sent} dead letters; {len(report.invalid)} can never succeed")
        for message_id in report.invalid:
            click.echo(f"  invalid: {message_id}")
    finally:
        container.close()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite files live (default: $MEMCUBE_DATA_DIR or ~/.memcube).",
)
@click.option("--workers", type=int, default=None, help="Worker threads (default 2).")
def serve(host: str, port: int, data_dir: Path | None, workers: int | None) -> None:
    """Run the API and the worker in one process on persistent local storage."""
    import uvicorn

    from memcube_api.app import create_app
    from memcube_local.embedded import DataDirLocked, EmbeddedWorker, lock_data_dir
    from memcube_local.wiring import LocalContainer

    overrides: dict[str, object] = {"backend": "embedded"}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if workers is not None:
        overrides["workers"] = workers
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.auth_mode == "none" and host not in LOOPBACK:
        raise click.ClickException(
            f"refusing to listen on {host} without authentication: set MEMCUBE_AUTH=keys and create keys "
            "with `memcube keys create --user <id>` (or listen on 127.0.0.1)"
        )
    from memcube_local import logfmt

    log_config = logfmt.configure()  # refusals with their fields; no credential in any URL logged
    try:
        lock = lock_data_dir(settings.data_dir)
    except DataDirLocked as exc:
        raise click.ClickException(str(exc)) from exc
    container = LocalContainer(settings)
    _match_index_to_embedder(container)
    worker = EmbeddedWorker(container)
    worker.start()  # loads the model in the background while the API starts; takes messages once ready
    auth = "API keys required" if settings.auth_mode == "keys" else "no authentication (loopback only)"
    click.echo(f"memcube: data in {settings.data_dir.resolve()}, API on http://{host}:{port}, {auth}")
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down, so the cleanup runs in the app's
    # lifespan shutdown (the worker finishes its in-flight message there), not after run().
    app = create_app(lambda: container, on_shutdown=[worker.stop, container.close])
    from memcube_local.mcp_http import PATH, mount_mcp

    if mount_mcp(app, host=host):
        click.echo(f"memcube: MCP (streamable HTTP) on http://{host}:{port}{PATH}")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", log_config=log_config)
    finally:
        lock.close()


def _match_index_to_embedder(container: LocalContainer) -> None:
    """A data dir indexed with another embedding model (an upgrade, or MEMCUBE_EMBEDDER changed)
    is re-embedded before serving: vectors of two models are never mixed or compared."""
    built_with = container.index.embedding_model()
    wanted = container.embedder.model_id
    if built_with is None or built_with == wanted:
        return
    click.echo(f"memcube: the index was built with {built_with or 'an unnamed model'}; re-embedding with {wanted}")
    done = container.maintenance.reindex()
    click.echo(f"memcube: {done} memories re-embedded and indexed")


def _register_user_commands() -> None:
    from memcube_client.cli import USER_COMMANDS

    for command in USER_COMMANDS:
        main.add_command(command)


_register_user_commands()
