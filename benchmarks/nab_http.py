"""The client workflow over HTTP, NAB-scored: what the service's detection figures mean.

Usage: ``python benchmarks/nab_http.py --data DIR --labels FILE [--detector adaptive]
[--url URL | --serve] [--workers N] [--out DIR]``

For every file of a NAB-layout corpus, exactly what a monitoring client does and nothing
else: one ``POST /fit/{series}`` with the first 15% of the rows (NAB's probationary
period, at most 750 rows; the detector's default retrain policy unless ``--retrain``),
then one ``POST /predict/{series}`` per later row, in file order, each with the contract's
body (``{"timestamp": "<unix seconds>", "value": x}``), keeping the answer's ``score``.
Files are replayed ``--concurrency`` at a time (each file's predicts one after the other
on one keep-alive connection). The scores are NAB-scored as ``anomaly-api evaluate``
scores its own (``anomaly_api.nab``: one threshold per profile over the corpus), and
every non-200 answer is counted as an error.

With ``--serve`` a throwaway server (fresh SQLite file; ``--workers`` worker processes)
is started and stopped. ``--compare`` also runs ``anomaly-api evaluate``'s live mode
in-process and reports whether each row's score is the same.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import orjson

from anomaly_api.auth import client_headers
from anomaly_api.bench_server import target_url
from anomaly_api.evaluate import (
    DetectorResult,
    FileAnswers,
    ReplayConfig,
    alert_scores,
    flag_scores,
    format_results,
    series_id_for,
)
from anomaly_api.evaluate import evaluate as evaluate_in_process
from anomaly_api.nab import LabelledFile, probation_rows, read_corpus, score_all_profiles


class Client:
    """One keep-alive connection to the service."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.errors = 0

    def post(self, path: str, body: bytes) -> dict[str, Any] | None:
        headers = {"Content-Type": "application/json", **client_headers()}
        self.connection.request("POST", path, body, headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            self.errors += 1
            print(f"{path}: {response.status} {data[:200]!r}", file=sys.stderr)
            return None
        answer: dict[str, Any] = orjson.loads(data)
        return answer

    def delete(self, path: str) -> None:
        self.connection.request("DELETE", path, headers=client_headers())
        self.connection.getresponse().read()


def replay(
    url: str, file: LabelledFile, detector: str, retrain: Any, prefix: str
) -> tuple[FileAnswers, int]:
    """One file through the client workflow: its answers (0 in probation) and errors."""
    client = Client(url)
    series = quote(prefix + series_id_for(file), safe="")
    timestamps = file.timestamps.astype("datetime64[s]").astype(np.int64).tolist()
    values = file.values.tolist()
    start = probation_rows(len(values))
    fit: dict[str, Any] = {
        "timestamps": timestamps[:start],
        "values": values[:start],
        "detector": detector,
    }
    if retrain is not None:
        fit["retrain"] = retrain
    client.post(f"/fit/{series}", orjson.dumps(fit))
    answers = FileAnswers.empty(len(values))
    path = f"/predict/{series}"
    for row in range(start, len(values)):
        body = orjson.dumps({"timestamp": str(timestamps[row]), "value": values[row]})
        answer = client.post(path, body)
        if answer is not None:
            answers.record(row, answer)
    client.delete(f"/series/{series}")
    return answers, client.errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--detector", default="adaptive")
    parser.add_argument("--retrain", help="the fit's retrain policy as JSON (default: none sent)")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--serve", action="store_true", help="start a throwaway server")
    parser.add_argument("--workers", type=int, default=1, help="--serve: worker processes")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--compare", action="store_true", help="also run evaluate in-process")
    parser.add_argument("--out", type=Path, help="write nab_http.json here")
    args = parser.parse_args()
    retrain = json.loads(args.retrain) if args.retrain else None
    files = read_corpus(args.data, args.labels)
    prefix = f"nabhttp-{int(time.time())}-"
    started = time.perf_counter()
    with (
        target_url(args.url, args.serve, workers=args.workers) as url,
        ThreadPoolExecutor(max_workers=args.concurrency) as pool,
    ):
        outcomes = list(
            pool.map(lambda file: replay(url, file, args.detector, retrain, prefix), files)
        )
    seconds = time.perf_counter() - started
    answers = [outcome[0] for outcome in outcomes]
    scores = [answer.score for answer in answers]
    errors = sum(outcome[1] for outcome in outcomes)
    requests = sum(len(file.values) - probation_rows(len(file.values)) + 2 for file in files)
    alerts = alert_scores(files, answers)
    result = DetectorResult(
        args.detector,
        score_all_profiles(files, [answer.alert_scores() for answer in answers]),
        seconds,
        flag_scores=flag_scores(files, scores),
        alert_scores=alerts,
    )
    print(f"over HTTP: {len(files)} files, {requests} requests, {errors} errors, {seconds:.0f} s")
    print(format_results([result]))
    report: dict[str, Any] = {
        "detector": args.detector,
        "files": len(files),
        "requests": requests,
        "errors": errors,
        "seconds": seconds,
        "profiles": {name: score.normalized for name, score in result.scores.items()},
        "alerts": {name: score.normalized for name, score in alerts.items()},
    }
    if args.compare:
        config = ReplayConfig(retrain=retrain)
        [local] = evaluate_in_process(
            args.data, args.labels, [args.detector], config, progress=False, keep_scores=True
        )
        assert local.answers is not None
        differing = {
            file.name: int(
                np.count_nonzero(
                    (http.score != here.score)
                    | (http.incident != here.incident)
                    | (http.side != here.side)
                )
            )
            for file, http, here in zip(files, answers, local.answers, strict=True)
        }
        same = not any(differing.values())
        print(
            "anomaly-api evaluate (live, in-process): every row's score, incident and "
            f"direction the same: {same}"
        )
        if not same:
            print(f"rows whose score differs, per file: {differing}")
        print(format_results([local]))
        report["same_as_evaluate"] = same
        report["evaluate"] = {name: score.normalized for name, score in local.scores.items()}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "nab_http.json").write_text(json.dumps(report, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
