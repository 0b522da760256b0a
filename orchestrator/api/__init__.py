"""The HTTP surface: thin FastAPI routers over the services."""
