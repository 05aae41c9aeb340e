"""Selectors of the sop app."""
