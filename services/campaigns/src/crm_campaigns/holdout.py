"""Which arm a contact is in for a campaign: a deterministic draw, the same in every process.

The draw is the first 8 bytes (big-endian) of sha256(campaign id, NUL, contact id), both
UTF-8, as a fraction of 2**64; the contact is held out when it is below the campaign's
holdout share. Python's `hash` would not do: it is salted per process.
"""

from __future__ import annotations

import hashlib

from crm_campaigns.domain import Arm


def arm_of(campaign_id: str, contact_id: str, share: float) -> Arm:
    """HOLDOUT for about `share` of contacts (0: none, 1: all), always the same for a pair."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"holdout share must be between 0 and 1, not {share}")
    # draw / 2**64 < share, compared exactly: the float division could round a draw just
    # under 2**64 up to 1.0 and hold out fewer than all at share 1. share * 2**64 is exact
    # (a power of two) and Python compares an int with a float exactly.
    return Arm.HOLDOUT if _draw(campaign_id, contact_id) < share * 2**64 else Arm.TREATED


def _draw(campaign_id: str, contact_id: str) -> int:
    """An integer in [0, 2**64) fixed by the pair; the NUL keeps ("a:b", "c") from ("a", "b:c")."""
    digest = hashlib.sha256(f"{campaign_id}\0{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
