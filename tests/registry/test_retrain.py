"""Retrain policies: parsing, and the registry fitting series again on their own streams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS, Series, detector_class
from anomaly_api.errors import InvalidParameter
from anomaly_api.registry import LoadedModel, ModelRegistry
from anomaly_api.registry.retrain import (
    DEFAULT_POLICIES,
    RetrainPolicy,
    Span,
    parse_policy,
    policy_for_fit,
)
from anomaly_api.storage import open_store
from tests.registry.test_streams import answers, predict_all, stream, training

# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "span"),
    [
        (1000, Span(points=1000)),
        ("90s", Span(seconds=90)),
        ("30m", Span(seconds=1800)),
        ("12h", Span(seconds=43_200)),
        ("1.5d", Span(seconds=129_600)),
        ("2w", Span(seconds=1_209_600)),
    ],
)
def test_spans_are_points_or_durations(text: object, span: Span) -> None:
    policy = parse_policy({"every": text, "window": text}, max_points=10_000)
    assert policy.every == span == policy.window
    assert parse_policy(policy.to_json(), max_points=None) == policy


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([], "retrain", "must be an object"),
        ({"every": 10}, "retrain.window", "missing"),
        ({"every": 10, "window": 20, "often": 1}, "retrain.often", "unknown field"),
        ({"every": 0, "window": 20}, "retrain.every", "at least 1 point"),
        ({"every": True, "window": 20}, "retrain.every", "number of points or a duration"),
        ({"every": "1y", "window": 20}, "retrain.every", "duration such as"),
        ({"every": "400d", "window": 20}, "retrain.every", "at most 366 days"),
        ({"every": 10, "window": 20_000}, "retrain.window", "ANOMALY_STREAM_HISTORY_POINTS"),
        ({"every": 10, "window": 20, "keep": 0}, "retrain.keep", "from 1 to"),
        ({"every": 10, "window": 20, "keep_for": 5}, "retrain.keep_for", "duration"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(body: object, field: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message) as raised:
        parse_policy(body, max_points=10_000)
    assert raised.value.field == field


def test_every_detector_has_a_default_policy_and_false_turns_it_off() -> None:
    assert set(DEFAULT_POLICIES) == set(DETECTORS)
    for name in DETECTORS:
        policy = policy_for_fit(name, None, max_points=10_000)
        assert policy is not None and policy.keep == 10
        assert policy_for_fit(name, False, max_points=10_000) is None
    asked = policy_for_fit("zscore", {"every": 5, "window": "1h", "keep": 3}, max_points=10_000)
    assert asked == RetrainPolicy(Span(points=5), Span(seconds=3600), keep=3)


def test_due_counts_points_or_stream_time() -> None:
    by_points = parse_policy({"every": 3, "window": 10}, max_points=None)
    assert [by_points.due(n, 0, 0) for n in (2, 3)] == [False, True]
    assert by_points.first_due(1, np.arange(5), 0) == 1
    assert by_points.first_due(0, np.arange(2), 0) is None
    by_time = parse_policy({"every": "1h", "window": 10}, max_points=None)
    assert by_time.due(1, 3599, 0) is False and by_time.due(1, 3600, 0) is True
    assert by_time.first_due(0, np.array([600, 3000, 3600, 4000]), 0) == 2


# -- the registry retraining a series on its stream -----------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ModelRegistry]:
    opened = ModelRegistry(open_store(f"sqlite:///{tmp_path / 'r.db'}"), stream_flush_s=0)
    yield opened
    opened.close()


def test_a_points_policy_fits_the_next_version_on_the_history_window(
    registry: ModelRegistry,
) -> None:
    train_t, train_v = training(400)
    times, values = stream(130)
    registry.fit("s", train_t, train_v, "hampel", retrain={"every": 50, "window": 200})
    answered = predict_all(registry, "s", times, values)
    assert [p.version for p in answered] == [1] * 50 + [2] * 50 + [3] * 30
    versions = registry.versions("s")
    assert [(v.version, v.trigger) for v in versions] == [
        (1, "client"),
        (2, "retrain"),
        (3, "retrain"),
    ]
    assert versions[2].retrain == versions[0].retrain == {"every": 50, "window": 200, "keep": 10}
    # Version 3 was fitted on the last 200 points of the history when the 100th arrived.
    history_t = np.concatenate([train_t, times[:100]])
    history_v = np.concatenate([train_v, values[:100]])
    expected = detector_class("hampel")().fit(Series(history_t[-200:], history_v[-200:]))
    assert registry.model("s", 3).detector.state() == expected.state()
    assert versions[2].first_timestamp == int(history_t[-200])
    assert versions[2].last_timestamp == int(times[99])


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_a_batch_retrains_where_single_predicts_do(registry: ModelRegistry, detector: str) -> None:
    train_t, train_v = training(400)
    times, values = stream(300)
    policy = {"every": "6h", "window": 300}  # every 72 points of 5-minute data
    registry.fit("one", train_t, train_v, detector, retrain=policy)
    registry.fit("batch", train_t, train_v, detector, retrain=policy)
    singles = predict_all(registry, "one", times, values)
    used, scores, observed = registry.score_batch("batch", times, values)
    assert observed.all()
    assert [index for index, _ in used] == [0, 72, 144, 216, 288]
    assert [model.version for _, model in used] == [1, 2, 3, 4, 5]
    assert [p.version for p in singles] == _spread(used, 300)
    assert [p.score for p in singles] == scores.score.tolist()
    assert [p.anomaly for p in singles] == scores.anomaly.tolist()


def _spread(used: list[tuple[int, LoadedModel]], size: int) -> list[int]:
    versions: list[int] = []
    for position, (start, model) in enumerate(used):
        end = used[position + 1][0] if position + 1 < len(used) else size
        versions += [model.version] * (end - start)
    return versions


def test_retention_keeps_client_fits_and_the_newest_automatic_versions(
    registry: ModelRegistry,
) -> None:
    train_t, train_v = training(400)
    times, values = stream(100)
    registry.fit("s", train_t, train_v, "zscore", retrain={"every": 10, "window": 100, "keep": 2})
    predict_all(registry, "s", times, values)
    versions = registry.versions("s")
    assert [(v.version, v.trigger) for v in versions] == [
        (1, "client"),
        (10, "retrain"),
        (11, "retrain"),
    ]


def test_pinned_predicts_and_what_ifs_do_not_retrain(registry: ModelRegistry) -> None:
    train_t, train_v = training(400)
    times, values = stream(60)
    registry.fit("s", train_t, train_v, "zscore", retrain={"every": 5, "window": 100})
    predict_all(registry, "s", times[:30], values[:30], version=1)
    predict_all(registry, "s", times[30:], values[30:] + 0.5, observe=False)
    assert [v.version for v in registry.versions("s")] == [1]
    registry.predict("s", 1.0, int(times[-1]) + 300)  # latest: due long ago, so it retrains now
    assert [v.version for v in registry.versions("s")] == [1, 2]


def test_retrain_false_never_retrains_and_a_restart_keeps_the_cadence(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    train_t, train_v = training(400)
    times, values = stream(100)
    first = ModelRegistry(open_store(url), stream_flush_s=0)
    first.fit("off", train_t, train_v, "zscore", retrain=False)
    first.fit("s", train_t, train_v, "zscore", retrain={"every": 40, "window": 100})
    first.fit("ref", train_t, train_v, "zscore", retrain={"every": 40, "window": 100})
    predict_all(first, "off", times, values)
    assert [v.version for v in first.versions("off")] == [1]
    before = predict_all(first, "s", times[:25], values[:25])
    first.close()
    second = ModelRegistry(open_store(url), stream_flush_s=0)
    try:
        after = predict_all(second, "s", times[25:], values[25:])
        reference = predict_all(second, "ref", times, values)
        assert answers(before + after) == answers(reference)
        assert [p.version for p in after][14:16] == [1, 2]  # the 40th point, then version 2
    finally:
        second.close()
