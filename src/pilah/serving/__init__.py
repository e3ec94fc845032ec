"""The REST API (FastAPI): routes and admission control, request limits, dynamic batching, response schemas."""
