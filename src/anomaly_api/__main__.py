"""``python -m anomaly_api`` is the ``anomaly-api`` command."""

from anomaly_api.cli import main

main()
