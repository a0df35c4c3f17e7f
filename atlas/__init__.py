"""Attention Atlas: measure every attention head of a transformer and write a static site."""

__version__ = "0.1.0"
