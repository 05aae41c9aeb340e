"""Tasks of the orgs app."""
