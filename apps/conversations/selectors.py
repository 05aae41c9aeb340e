"""Selectors of the conversations app."""
