"""perfstack: one typed performance profile rendered into every tuned setting of an AI stack."""

__version__ = "0.1.0"
