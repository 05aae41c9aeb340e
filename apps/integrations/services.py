"""Services of the integrations app."""
