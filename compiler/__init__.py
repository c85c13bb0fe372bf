"""Kiln: a declarative ML spec compiler."""

__version__ = "0.1.0"
