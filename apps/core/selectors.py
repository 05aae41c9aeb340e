"""Selectors of the core app."""
