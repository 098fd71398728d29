"""wrk runs for the benchmark scripts (``benchmarks/``): one way to run, read and cost them.

The scripts pin the server to :data:`SERVER_CORE` and wrk to :data:`CLIENT_CORE` and
report the server's CPU time per request, read from ``/proc``, beside wrk's own figures:
on a shared machine it is steadier than requests per second.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

SERVER_CORE, CLIENT_CORE = "0", "1"
_TICKS = os.sysconf("SC_CLK_TCK")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / _TICKS


def parse_wrk(output: str) -> dict[str, Any]:
    """Rate, request count, p50/p99 (ms) and errors (socket errors and non-2xx) of
    ``wrk --latency`` output."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise ValueError(f"not wrk output: {output[:200]!r}")
    latency = {
        name: float(value) * _UNITS[unit]
        for name, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", output, re.M)
    }
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_s": float(rate.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": latency.get("50"),
        "p99_ms": latency.get("99"),
        "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0),
    }


def run_wrk(
    url: str, script: Path, seconds: int, server_pid: int, script_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``wrk -t1 -c100`` on :data:`CLIENT_CORE` for ``seconds``: :func:`parse_wrk`'s
    figures and the server's CPU microseconds per request."""
    cpu_before = cpu_seconds(server_pid)
    command = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", "-c100", f"-d{seconds}s"]
    command += ["--latency", "-s", str(script), url]
    if script_args:
        command += ["--", *script_args]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server_pid) - cpu_before
    result = parse_wrk(output)
    total = result["requests"]
    result["cpu_us_per_request"] = cpu / total * 1e6 if total else None
    return result
