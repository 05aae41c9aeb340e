"""Services of the conversations app."""
