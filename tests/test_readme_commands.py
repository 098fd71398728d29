"""The README's commands, run as written against a real ``anomaly-api serve`` (only the
address changed to the test server's): each answers, and every field its comment shows
has the value shown (timings left out). Blocks that start the service or the tests
(``make run``, ``make test``) are what this suite and its servers are."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server

README = Path(__file__).resolve().parents[1] / "README.md"
README_ADDRESS = "http://127.0.0.1:8000"
VOLATILE = {"avg", "p95", "uptime_s"}
"""Timings: never the same twice."""
_PAIR = re.compile(r'"(\w+)":("[^"]*"|true|false|null|-?\d+(?:\.\d+)?(?:e-?\d+)?)')

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def shell_blocks() -> list[list[str]]:
    """Each ```sh block of the README, as its lines."""
    return [
        block.splitlines() for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    ]


def commands_with_answers(lines: list[str]) -> list[tuple[str, str]]:
    """``(command, the comment lines after it joined)`` for each command of a block."""
    found: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith("# ") and found:
            command, shown = found[-1]
            found[-1] = (command, shown + line[2:].strip())
        elif line.strip() and not line.startswith("#"):
            found.append((line, ""))
    return found


def pairs(value: Any, key: str = "") -> set[tuple[str, str]]:
    """Every ``(field, JSON of its value)`` of scalars anywhere in ``value``."""
    if isinstance(value, dict):
        return set().union(*(pairs(item, name) for name, item in value.items()))
    if isinstance(value, list):
        return set().union(set(), *(pairs(item, key) for item in value))
    return {(key, json.dumps(value))}


def _normal(text: str) -> str:
    return json.dumps(json.loads(text))


def run(command: str, **env: str) -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **env},
    )
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


def test_the_walkthrough_answers_what_the_readme_shows(tmp_path: Path) -> None:
    (walkthrough,) = [block for block in shell_blocks() if README_ADDRESS + "/fit/" in block[0]]
    steps = commands_with_answers(walkthrough)
    assert len(steps) == 6
    server = Server(tmp_path / "readme.db")
    try:
        for command, shown in steps:
            assert command.startswith("curl ") and README_ADDRESS in command
            output = run(command.replace(README_ADDRESS, server.url))
            answer = json.loads(output)
            got = pairs(answer)
            expected = {
                (name, _normal(value))
                for name, value in _PAIR.findall(shown)
                if name not in VOLATILE
            }
            assert expected, command
            assert expected - got == set(), command
    finally:
        server.stop()


def test_the_key_commands_work_as_written(tmp_path: Path) -> None:
    (keys,) = [block for block in shell_blocks() if block[0].startswith("anomaly-api keys")]
    create, predict, revoke = (command for command, _ in commands_with_answers(keys))
    database = f"sqlite:///{tmp_path / 'keys.db'}"
    server = Server(tmp_path / "keys.db", env={"ANOMALY_AUTH": "required"})
    try:
        key = run(create, ANOMALY_DATABASE_URL=database).strip().splitlines()[-1]
        host = server.url.removeprefix("http://").rsplit(":", 1)[0]
        port = server.url.rsplit(":", 1)[1]
        call = predict.replace("HOST:8000", f"{host}:{port}")
        # The series must exist: fit it with the same key (it has the write scope).
        fit = (
            f"curl -s -X POST {server.url}/fit/sensor_1 -H 'Authorization: Bearer {key}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240], "values": [10, 11, 9, 12, 15]}\''
        )
        deadline = time.monotonic() + 1.0  # a new key is known everywhere within a second
        while (fitted := json.loads(run(fit))).get("version") != "1":
            assert time.monotonic() < deadline, fitted
            time.sleep(0.1)
        answer = json.loads(run(call, KEY=key))
        assert answer["series_id"] == "sensor_1" and "anomaly" in answer
        run(revoke, ANOMALY_DATABASE_URL=database)
        time.sleep(1.0)  # "refused everywhere within a second"
        refused = run(call.replace("curl ", "curl -s -o /dev/null -w '%{http_code}' ", 1), KEY=key)
        assert refused == "401"
    finally:
        server.stop()
