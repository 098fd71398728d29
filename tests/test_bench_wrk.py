"""Reading wrk's output for the benchmark scripts."""

from __future__ import annotations

import os

import pytest

from anomaly_api.bench_wrk import cpu_seconds, parse_wrk

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/predict/s
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms  512.00us  20.01ms   90.00%
  Latency Distribution
     50%    2.96ms
     75%    3.20ms
     90%    3.60ms
     99%  850.00us
  301234 requests in 10.00s, 90.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30123.40
Transfer/sec:      9.00MB
"""


def test_wrk_figures_are_read_with_their_units() -> None:
    assert parse_wrk(WRK_OUTPUT) == {
        "requests_per_s": 30123.4,
        "requests": 301234,
        "p50_ms": 2.96,
        "p99_ms": 0.85,
        "errors": 7,
    }


def test_anything_else_is_refused() -> None:
    with pytest.raises(ValueError, match="not wrk output"):
        parse_wrk("wrk: command not found")


def test_cpu_time_of_this_process_is_read_from_proc() -> None:
    assert cpu_seconds(os.getpid()) > 0
