"""Runpod: the deploy spec, its control-plane requests (REST v2, GraphQL where v2 cannot say it), stage workers,
Dockerfile rendering and the local topology. Nothing here imports runpod, httpx or torch at module import."""
