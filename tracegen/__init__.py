"""tracegen: per-step inference traces and the reports that explain them."""

__version__ = "0.1.0"
