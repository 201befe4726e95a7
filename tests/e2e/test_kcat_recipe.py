"""The kcat recipe of services/scoring/README.md, run as written against the embedded broker.

Only the broker address, the topic and the group name are replaced, and `-e` is added to
the group command so that it stops at the end. Without kcat on the machine, only the part
that needs none is checked: the recipe's path is the wheel's librdkafka 2.16 or later.
"""

from __future__ import annotations

import asyncio
import ctypes
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from crm_contracts import KafkaRecord
from tests.conftest import unique
from tests.support.kafka import produce
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "services" / "scoring" / "README.md"


def recipe() -> str:
    """The shell block that follows **kcat** in the README."""
    text = README.read_text()
    found = re.search(r"\*\*kcat\*\*.*?```sh\n(.*?)```", text, re.DOTALL)
    assert found, "no kcat recipe in services/scoring/README.md"
    return found.group(1)


def _needs_the_venv() -> None:
    if not (ROOT / ".venv").is_dir():
        pytest.skip("the recipe runs from a checkout with its .venv")


def test_the_recipe_preloads_the_librdkafka_of_the_wheel_by_an_absolute_path() -> None:
    _needs_the_venv()
    [assignment] = [line for line in recipe().splitlines() if line.startswith("LIB=")]
    path = subprocess.run(
        ["bash", "-c", f'{assignment}\nprintf %s "$LIB"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(path).is_absolute() and Path(path).is_file(), path
    version_str = ctypes.CDLL(path).rd_kafka_version_str
    version_str.restype = ctypes.c_char_p
    major, minor, *_ = (int(n) for n in version_str().decode().split("."))
    assert (major, minor) >= (2, 16)  # Debian's 2.0 cannot talk to the embedded broker


async def test_kcat_with_the_recipe_reads_a_topic_from_the_beginning_with_and_without_a_group(
    servers: Servers, new_topic: Callable[..., Awaitable[str]]
) -> None:
    _needs_the_venv()
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")
    topic = await new_topic("kcat")
    keys = [f"c-{n}" for n in range(3)]
    await produce(
        servers.bootstrap,
        topic,
        [KafkaRecord(k.encode(), b'{"n": 1}', [("ce_id", k.encode())]) for k in keys],
    )
    script = (
        recipe()
        .replace("127.0.0.1:9092", servers.bootstrap)
        .replace("crm.scores.v1", topic)
        .replace("my-bi-app", unique("kcat-group"))
        .replace("-X auto.offset.reset=earliest \\\n", "-X auto.offset.reset=earliest -e \\\n")
    )
    assert script.count(" -e ") == 2

    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)

    assert process.returncode == 0, stderr.decode()[-2000:]
    lines = stdout.decode().splitlines()
    assert re.fullmatch(r"librdkafka 2\.\d+\.\d+", lines[0]), lines[0]
    printed = sorted(line.removeprefix("key=") for line in lines if line.startswith("key="))
    assert printed == sorted(keys * 2)  # the group, then the plain read: everything, each
    assert sum(line == "headers=ce_id=c-0" for line in lines) == 1
