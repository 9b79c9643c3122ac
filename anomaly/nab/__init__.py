"""NAB evaluation: corpus reading, detector runs and NAB's scoring rules."""

__all__ = ["corpus", "scorer"]
