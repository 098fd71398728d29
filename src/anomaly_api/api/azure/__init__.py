"""The Azure Anomaly Detector-compatible surface: an existing Azure client works by
changing only its endpoint. :mod:`.surface` routes Azure's paths (any prefix, ``//``, the
operation in any case) and gives every answer on them Azure's error shapes; :mod:`.routes`
answers the three univariate operations with :mod:`anomaly_api.azure`."""
