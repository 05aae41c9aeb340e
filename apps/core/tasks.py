"""Tasks of the core app."""
