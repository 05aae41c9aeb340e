"""Tasks of the accounts app."""
