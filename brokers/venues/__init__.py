"""Venue connectors: one module per venue behind the interface in `base`."""
