"""Kept for imports: the service's settings live in `cortex.control.settings`."""

from cortex.control.settings import Settings

__all__ = ["Settings"]
