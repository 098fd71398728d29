"""Rows and records: the one translation both stores use."""

from __future__ import annotations

import numpy as np

from anomaly_api.storage import StoredVersion
from anomaly_api.storage.rows import (
    copied_row,
    counter_floors,
    created_record,
    new_row,
    record_from_row,
    stored_from_row,
)
from tests.storage.test_store import new_model


def test_a_copied_row_reads_back_as_the_same_version() -> None:
    model = new_model("a", points=40)
    stored = StoredVersion(created_record(model, 3, 1_700_000_000.5), model.training)
    back = stored_from_row(copied_row(stored))
    assert back.record == stored.record
    np.testing.assert_array_equal(back.training.timestamps, model.training.timestamps)
    np.testing.assert_array_equal(back.training.values, model.training.values)


def test_a_new_row_is_a_copied_row_without_its_id_and_number() -> None:
    model = new_model("a")
    record = created_record(model, 2, 12.0)
    assert ("a", 2, *new_row(model, 12.0)) == copied_row(StoredVersion(record, model.training))
    assert record_from_row(copied_row(StoredVersion(record, model.training))) == record


def test_counter_floors_cover_every_copied_version() -> None:
    model = new_model("a")
    versions = [StoredVersion(created_record(model, v, 0.0), model.training) for v in (2, 7)]
    assert counter_floors(versions, {"a": 5, "gone": 3}) == {"a": 7, "gone": 3}
    assert counter_floors(versions, {"a": 9}) == {"a": 9}
