"""Every setting is in the table of environment variables (docs/operations.md, linked from
the README), and nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

from anomaly_api.settings import Settings

README = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def test_the_readme_lists_every_setting() -> None:
    listed = set(re.findall(r"^\| `(ANOMALY_[A-Z_]+)` \|", README.read_text(), re.MULTILINE))
    settings = {f"ANOMALY_{name.upper()}" for name in Settings.model_fields}
    assert listed == settings, (sorted(settings - listed), sorted(listed - settings))
