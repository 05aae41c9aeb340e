"""Tasks of the integrations app."""
