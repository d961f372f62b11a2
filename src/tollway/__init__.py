"""Tollway: an AI gateway and API management platform."""

__version__ = "0.1.0"
