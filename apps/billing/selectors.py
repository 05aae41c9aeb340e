"""Selectors of the billing app."""
