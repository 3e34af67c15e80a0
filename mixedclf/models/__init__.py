"""Model resolution and loading: HF sequence-classification folders and encoder + trained head folders."""

from mixedclf.models.spec import DEFAULT_MODEL, ModelSpec, list_models, resolve_model

__all__ = ["DEFAULT_MODEL", "ModelSpec", "list_models", "resolve_model"]
