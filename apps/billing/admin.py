"""Admin of the billing app."""
