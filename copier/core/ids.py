"""Deterministic client order ids.

The same (copy link, master reference, event sequence) always gives the same
id, so a resent order is recognised by the venue instead of filled twice. The
id is 26 characters of [0-9A-Z]: inside ccxt exchanges' clientOrderId limits
(Binance and Bybit take 36) and MT5's 31-character comment.
"""

import hashlib

PREFIX = "TS"


def client_order_id(link_id: int, master_ref: str, seq: int) -> str:
    digest = hashlib.sha256(f"{link_id}|{master_ref}|{seq}".encode()).hexdigest()
    return PREFIX + digest[:24].upper()
