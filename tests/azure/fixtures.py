"""Microsoft's example series (``../shared/AZURE_COMPAT.md`` section 6.2), small enough to
ship with the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

MONTHLY_VALUES = [
    826, 799, 890, 900, 961, 935, 894, 855, 809, 810, 766, 805,
    821, 773, 883, 898, 957, 924, 881, 837, 784, 791, 760, 802,
    828, 1030, 889, 902, 969, 947, 908, 867, 815, 812, 773, 813,
    834, 782, 892, 903, 966, 937, 896, 858, 817, 827, 797, 843,
]  # fmt: skip
DAILY_VALUES = [
    32858923, 29615278, 22839355, 25948736, 34139159, 33843985, 33637661, 32627350, 29881076,
    22681575, 24629393, 34010679, 33893888, 33760076, 33093515, 29945555, 22676212, 25262514,
    33631649, 34468310, 34212281, 38144434, 34662949, 24623684, 26530491, 35445003, 34250789,
    33423012, 30744783, 25825128, 21244209, 22576956, 31957221, 33841228, 33554483, 32383350,
    29494850, 22815534, 25557267, 34858252, 34750597, 34717956, 34132534, 30762236, 22504059,
    26149060, 35250105,
]  # fmt: skip
F7_ANOMALIES = [3, 18, 21, 22, 23, 24, 25, 28, 29, 30, 31, 32, 35, 44]
"""What Azure's v1.0 answered for the daily sample (reported, not required)."""


def monthly_series() -> list[dict[str, Any]]:
    """F1: 48 monthly points from 1972-01."""
    return [
        {"timestamp": f"{1972 + i // 12}-{i % 12 + 1:02d}-01T00:00:00Z", "value": value}
        for i, value in enumerate(MONTHLY_VALUES)
    ]


def daily_series(as_strings: bool = False) -> list[dict[str, Any]]:
    """F7 (F8 with ``as_strings``: the values as JSON strings, as the SDK test sent them)."""
    start = datetime(2018, 3, 1, tzinfo=UTC)
    return [
        {
            "timestamp": (start + timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "value": str(value) if as_strings else value,
        }
        for i, value in enumerate(DAILY_VALUES)
    ]
