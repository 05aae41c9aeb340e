"""Tasks of the conversations app."""
