"""``GET /detectors``: what fits can ask for."""

from __future__ import annotations

from fastapi import APIRouter

from anomaly_api.api.deps import RegistryDep
from anomaly_api.api.schemas import DetectorInfo
from anomaly_api.detectors import DETECTORS
from anomaly_api.registry.retrain import default_policy

router = APIRouter(tags=["service"])


@router.get("/detectors", response_model=list[DetectorInfo], summary="Available detectors")
def list_detectors(registry: RegistryDep) -> list[DetectorInfo]:
    """Each detector with its parameters, their defaults, a one-line description, how it
    learns from the stream and the retrain policy a fit gets when it names none."""
    return [
        DetectorInfo.model_validate(
            {
                **cls.describe(),
                "default": name == registry.default_detector,
                "retrain": default_policy(name),
            }
        )
        for name, cls in sorted(DETECTORS.items())
    ]
