"""`memcube` command line: `serve` runs the embedded default (API + worker, one process)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from memcube.settings import Settings


@click.group()
@click.version_option(package_name="memcube")
def main() -> None:
    """memcube: a MemOS-compatible memory service."""


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

    from memcube.embedded import DataDirLocked, EmbeddedWorker, lock_data_dir
    from memcube.wiring import Container
    from memcube_api.app import create_app

    overrides: dict[str, object] = {"backend": "embedded"}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if workers is not None:
        overrides["workers"] = workers
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        lock = lock_data_dir(settings.data_dir)
    except DataDirLocked as exc:
        raise click.ClickException(str(exc)) from exc
    container = Container(settings)
    worker = EmbeddedWorker(container)
    worker.start()
    click.echo(f"memcube: data in {settings.data_dir.resolve()}, API on http://{host}:{port}")
    try:
        uvicorn.run(create_app(lambda: container), host=host, port=port, log_level="info")
    finally:
        worker.stop()
        container.close()
        lock.close()
