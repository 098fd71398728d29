"""``GET /detectors``: what fits can ask for."""

from __future__ import annotations

from fastapi import APIRouter

from anomaly_api.api.deps import RegistryDep
from anomaly_api.api.schemas import DetectorInfo
from anomaly_api.detectors import DETECTORS

router = APIRouter(tags=["service"])


@router.get("/detectors", response_model=list[DetectorInfo], summary="Available detectors")
def list_detectors(registry: RegistryDep) -> list[DetectorInfo]:
    """Each detector with its parameters, their defaults and a one-line description."""
    return [
        DetectorInfo.model_validate(
            {**cls.describe(), "default": name == registry.default_detector}
        )
        for name, cls in sorted(DETECTORS.items())
    ]
