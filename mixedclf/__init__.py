"""mixedclf: cost-aware batch text classification (CPU pool for text work, device for the model)."""

__version__ = "0.1.0"
