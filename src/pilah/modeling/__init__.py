"""The seed's model (Xception under a small dense head) and the one place that knows its parts."""
