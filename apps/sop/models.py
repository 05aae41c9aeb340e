"""Models of the sop app."""
