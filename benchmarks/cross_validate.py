"""Leave-one-category-out cross-validation of a detector's tuned choices, on the live path.

Usage: ``python benchmarks/cross_validate.py --corpus DIR [--corpus DIR ...]
--detector adaptive [--grid threshold=1,1.5,2] [--cooldown 0,3600,...]
[--escalation 0,2,4] [--retrain 'POLICY;POLICY;...']``

``--retrain`` lists retrain policies (JSON, as a fit's ``retrain``; ``default`` for the
detector's own) to cross-validate too.

Each ``--corpus`` is a NAB-layout folder (``data/`` and ``labels/combined_windows.json``).
For every combination of the detector's ``--grid`` values and of the incident rules'
``--cooldown`` and ``--escalation`` values, every file is replayed as a client uses
the service (``anomaly-api evaluate``'s live mode: one fit on the probationary rows,
one predict per row); the rows whose answer said ``incident: "new"`` are the alerts.

The folds are the categories of all corpora together (NAB's ``realKnownCause``,
corpus2's ``data-ingress-rate``, ...). For each category, the combination with the best
NAB standard score of the alerts (the rows whose answer opened an incident) on the
*other* categories (the mean over corpora of each corpus' score without that category)
is chosen, and that category's files are marked with it. The
figures reported per corpus are NAB's scores of those held-out alerts, beside the
in-sample best and the detector's defaults: the gap between them is what tuning on the
labels would overstate.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anomaly_api.detectors import DETECTORS
from anomaly_api.evaluate import ReplayConfig, evaluate_detector
from anomaly_api.nab import LabelledFile, raw_totals, read_corpus, score_all_profiles

Combination = tuple[tuple[str, Any], ...]
"""A fit's parameters, as (name, value) pairs."""


def category(file: LabelledFile, corpus: str) -> str:
    return f"{corpus}/{file.name.split('/')[0]}"


def standard(files: Sequence[LabelledFile], alerts: Sequence[Any]) -> float:
    return score_all_profiles(files, alerts, threshold=0.5)["standard"].normalized


def describe(combo: Combination) -> str:
    return " ".join(
        f"{name}={value:g}" if isinstance(value, int | float) else f"{name}={value}"
        for name, value in combo
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument("--detector", default="adaptive", choices=sorted(DETECTORS))
    parser.add_argument("--grid", action="append", default=[], help="NAME=v1,v2,...")
    parser.add_argument("--cooldown", default="3600,14400,28800,86400")
    parser.add_argument("--escalation", default="0,2")
    parser.add_argument("--retrain", default="default", help="policies separated by ';'")
    args = parser.parse_args()

    kinds = {p.name: p.kind for p in DETECTORS[args.detector].all_parameters()}
    grid: dict[str, list[Any]] = {
        "cooldown_seconds": [int(item) for item in args.cooldown.split(",")],
        "escalation": [float(item) for item in args.escalation.split(",")],
    }
    for item in args.grid:
        name, _, values = item.partition("=")
        grid[name] = [kinds[name](value) for value in values.split(",")]
    grid["retrain"] = [item.strip() for item in args.retrain.split(";")]
    combos: list[Combination] = [
        tuple(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
    ]
    corpora: list[tuple[str, list[LabelledFile]]] = [
        (path.name, read_corpus(path / "data", path / "labels" / "combined_windows.json"))
        for path in args.corpus
    ]
    started = time.perf_counter()
    # alerts[combo][corpus index][file index]: 1.0 where the answer opened an incident.
    alerts: dict[Combination, list[list[Any]]] = {}
    for combo in combos:
        alerts[combo] = []
        params = dict(combo)
        policy = params.pop("retrain")
        config = ReplayConfig(retrain=None if policy == "default" else json.loads(policy))
        for _, files in corpora:
            result = evaluate_detector(files, args.detector, params, config, keep_scores=True)
            assert result.answers is not None
            alerts[combo].append([answer.alerts() for answer in result.answers])
    replayed = time.perf_counter() - started

    folds: dict[str, list[tuple[int, int]]] = {}
    for index, (name, files) in enumerate(corpora):
        for position, file in enumerate(files):
            folds.setdefault(category(file, name), []).append((index, position))
    # NAB's totals add up over files: (raw, null, perfect) per combination and file.
    totals = {
        combo: [
            np.array(
                [
                    raw_totals([file], [alert], 0.5)
                    for file, alert in zip(files, alerts[combo][index], strict=True)
                ]
            )
            for index, (_, files) in enumerate(corpora)
        ]
        for combo in combos
    }

    def objective(combo: Combination, left_out: str) -> float:
        """The mean over corpora of NAB's standard score without one category's files."""
        figures = []
        for index, (name, files) in enumerate(corpora):
            keep = [category(file, name) != left_out for file in files]
            raw, null, perfect = totals[combo][index][keep].sum(axis=0)
            figures.append(100.0 * (raw - null) / (perfect - null))
        return float(np.mean(figures))

    chosen = {fold: max(combos, key=lambda combo: objective(combo, fold)) for fold in folds}
    print(f"{args.detector}: {len(combos)} combinations, {len(folds)} folds, {replayed:.0f} s")
    for fold, combo in chosen.items():
        print(f"  without {fold:<45} chose {describe(combo)}")
    for index, (name, files) in enumerate(corpora):
        held_out = [
            alerts[chosen[category(file, name)]][index][position]
            for position, file in enumerate(files)
        ]
        scores = score_all_profiles(files, held_out, threshold=0.5)
        best = max(combos, key=lambda combo: standard(files, alerts[combo][index]))
        best_scores = score_all_profiles(files, alerts[best][index], threshold=0.5)
        figures = " / ".join(f"{score.normalized:.2f}" for score in scores.values())
        best_figures = " / ".join(f"{score.normalized:.2f}" for score in best_scores.values())
        print(f"{name}: cross-validated alerts (standard / low_FP / low_FN): {figures}")
        print(f"{name}: in-sample best {best_figures} with {describe(best)}")
        for combo in combos:
            row = score_all_profiles(files, alerts[combo][index], threshold=0.5)
            print(
                f"    {describe(combo):<50} "
                + " / ".join(f"{score.normalized:7.2f}" for score in row.values())
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
