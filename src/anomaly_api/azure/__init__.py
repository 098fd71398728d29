"""Azure Anomaly Detector's univariate operations, on this service's own models.

:mod:`.request` reads and checks a request as Azure did (its error codes and messages),
:mod:`.grid` places the points on the granularity's grid and fills the gaps, and
:mod:`.model` answers entire, last-point and change-point detection. No web imports: the
HTTP surface is :mod:`anomaly_api.api.azure`. ``docs/azure.md`` maps each Azure option
onto what the model does with it.
"""
