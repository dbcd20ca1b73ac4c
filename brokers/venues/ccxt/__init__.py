"""Crypto exchanges through ccxt: one generic connector, per-exchange capabilities."""
