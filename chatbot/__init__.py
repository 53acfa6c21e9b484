"""Question answering over a folder of French articles, with passages you can check."""

__version__ = "0.1.0"
