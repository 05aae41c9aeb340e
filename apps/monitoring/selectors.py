"""Selectors of the monitoring app."""
