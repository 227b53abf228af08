"""The official MemOS SDK's own venv (.tools/memos-sdk-venv), installed on first use and again
when memos-sdk-requirements.txt changes. Its dependencies would clash with memcube's, and the SDK
must run unmodified, so the suite drives it in a subprocess of that venv's Python (driver.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".tools" / "memos-sdk-venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = Path(__file__).with_name("memos-sdk-requirements.txt")
DRIVER = Path(__file__).with_name("driver.py")


def install_memos_sdk() -> Path:
    """The venv's Python, with MemoryOS and its client's imports installed (idempotent)."""
    stamp = VENV / ".requirements-sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if PYTHON.exists() and stamp.exists() and stamp.read_text() == want:
        return PYTHON
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(want)
    return PYTHON


if __name__ == "__main__":
    print(install_memos_sdk())
