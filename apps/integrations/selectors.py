"""Selectors of the integrations app."""
