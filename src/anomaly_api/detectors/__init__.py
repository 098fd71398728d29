"""The pure detector core: numpy and the standard library only.

No web framework, database driver or plotting library may be imported from here
(``tests/detectors/test_purity.py`` checks it), so the same code serves the HTTP API,
the evaluator and anyone who wants to use a detector as a library.
"""

from __future__ import annotations

from anomaly_api.detectors.adaptive import AdaptiveDetector
from anomaly_api.detectors.bands import PointScore, Scores, band_point, band_scores, robust_scale
from anomaly_api.detectors.base import Detector
from anomaly_api.detectors.cusum import CusumDetector
from anomaly_api.detectors.hampel import HampelDetector
from anomaly_api.detectors.params import Parameter
from anomaly_api.detectors.pattern import PatternDetector
from anomaly_api.detectors.robust import RobustDetector
from anomaly_api.detectors.seasonal import SeasonalDetector
from anomaly_api.detectors.series import Series
from anomaly_api.detectors.spread import SpreadDetector
from anomaly_api.detectors.trend import TrendDetector
from anomaly_api.detectors.zscore import ZScoreDetector
from anomaly_api.errors import InvalidParameter

DETECTORS: dict[str, type[Detector]] = {
    detector.name: detector
    for detector in (
        ZScoreDetector,
        RobustDetector,
        SeasonalDetector,
        HampelDetector,
        AdaptiveDetector,
        CusumDetector,
        SpreadDetector,
        TrendDetector,
        PatternDetector,
    )
}


def detector_class(name: str) -> type[Detector]:
    """The detector class registered as ``name``; unknown names list the valid ones."""
    try:
        return DETECTORS[name]
    except KeyError:
        valid = ", ".join(sorted(DETECTORS))
        raise InvalidParameter(
            f"unknown detector {name!r}; valid detectors: {valid}", field="detector"
        ) from None


__all__ = [
    "DETECTORS",
    "AdaptiveDetector",
    "CusumDetector",
    "Detector",
    "HampelDetector",
    "Parameter",
    "PatternDetector",
    "PointScore",
    "RobustDetector",
    "Scores",
    "SeasonalDetector",
    "Series",
    "SpreadDetector",
    "TrendDetector",
    "ZScoreDetector",
    "band_point",
    "band_scores",
    "detector_class",
    "robust_scale",
]
