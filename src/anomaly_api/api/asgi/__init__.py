"""Small pure-ASGI layers that sit in front of the FastAPI application."""
