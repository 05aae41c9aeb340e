"""Tasks of the sop app."""
