"""Tasks of the billing app."""
