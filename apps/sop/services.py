"""Services of the sop app."""
