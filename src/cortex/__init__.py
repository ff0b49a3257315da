"""Cortex: the operating layer for AI training superclusters."""

__version__ = "0.1.0"
