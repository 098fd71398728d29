"""The model registry: the one layer between the HTTP routes and the store.

* :mod:`.registry` numbers, stores, lists and deletes versions (:class:`ModelRegistry`);
* :mod:`.cache` holds fitted models in memory and keeps "latest" fresh across processes;
* :mod:`.scoring` turns a detector's answer for a point into a :class:`Prediction`;
* :mod:`.health` assembles the healthcheck.

It raises domain errors from :mod:`anomaly_api.errors` and knows nothing about HTTP.
"""

from __future__ import annotations

from anomaly_api.registry.cache import FREEZE_EVERY, LoadedModel, ModelCache
from anomaly_api.registry.registry import ModelRegistry
from anomaly_api.registry.scoring import Prediction

__all__ = ["FREEZE_EVERY", "LoadedModel", "ModelCache", "ModelRegistry", "Prediction"]
