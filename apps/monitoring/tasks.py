"""Tasks of the monitoring app."""
