"""Versioned, checksummed dataset releases built from the store (see `wattlas release`)."""
