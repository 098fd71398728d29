"""The dashboard at ``/ui``: static pages and scripts served by the service itself."""
