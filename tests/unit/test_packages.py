"""The packages match what runs where: the Lambda code (the layer and the two functions) imports
nothing of the embedded default, the client or the tests, and the client nothing of the server;
one wheel still holds every package."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAMBDA = ("layers/memcube/memcube", "functions/api/memcube_api", "functions/worker/memcube_worker")
LOCAL = "packages/memcube_local/memcube_local"
CLIENT = "packages/memcube_client/memcube_client"


def _imports(package: str, *, whole: bool = False) -> dict[str, set[str]]:
    """The top-level module (`whole`: the full module name) of every absolute import, lazy ones
    too -> the files importing it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name if whole else name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_lambda_code_imports_nothing_the_lambda_build_leaves_out() -> None:
    for package in LAMBDA:
        imports = _imports(package)
        assert {name: imports[name] for name in ("memcube_local", "memcube_client", "tests") if name in imports} == {}


def test_the_client_needs_nothing_of_the_server() -> None:
    imports = _imports(CLIENT)
    assert {name: imports[name] for name in ("memcube", "memcube_api", "memcube_local") if name in imports} == {}


def test_one_wheel_holds_every_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    assert packages == {*LAMBDA, LOCAL, CLIENT}
    assert project["project"]["scripts"]["memcube"] == "memcube_local.cli:main"


def test_the_domain_imports_no_sdk_and_no_wire_format() -> None:
    """The hexagon's core imports the standard library, a few computing libraries and itself, and reaches
    the outside only through `memcube.ports`: no SDK, no web framework, no adapter, and none of
    the API's wire formats (MemOS's and the hosted API's models live in `memcube_api.schemas`)."""
    modules = _imports("layers/memcube/memcube/domain", whole=True)
    # libraries of computation, not of I/O: models, times, vector math, repair of an LLM's JSON text
    third_party = {"pydantic", "dateutil", "numpy", "json_repair"}
    own = ("memcube.domain", "memcube.ports")
    foreign = {
        name: files
        for name, files in modules.items()
        if name.split(".")[0] not in sys.stdlib_module_names | third_party and not name.startswith(own)
    }
    assert foreign == {}
    assert len({f for files in modules.values() for f in files}) > 20  # every domain module was read
