"""Admin of the sop app."""
