"""tracegen: per-step inference traces and the reports that explain them."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `tracegen.Recorder` without importing polars for every `import tracegen`.
    if name == "Recorder":
        from tracegen.recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'tracegen' has no attribute {name!r}")
