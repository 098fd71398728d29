"""The HTTP layer: FastAPI app factory, schemas, error mapping and thin routers."""
