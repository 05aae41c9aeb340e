"""Services of the core app."""
