"""Definitions parsed once per version: segment rules and campaigns are read in every batch's
transaction, but only a definition whose stamp (its version as stored) is new to the process
is sent, decoded and parsed again. Pure: the caller reads the rows.

    known = cache.known()                       # id -> (stamp, parsed), a copy
    rows = ...   # every definition's (id, stamp, raw); raw None where known[id] has the stamp
    parsed = cache.refresh(known, rows, parse)  # id -> parsed; deleted ids forgotten

`known` is a copy taken before the read, so that another use case refreshing the cache
meanwhile (a timer's transaction between this one's statements) cannot change what a row
sent without its raw definition stands for.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)
R = TypeVar("R")
V = TypeVar("V")


class Parsed(Generic[S, R, V]):
    """The latest parse of each definition, by id, with the stamp it was parsed at."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[S, V]] = {}

    def known(self) -> dict[str, tuple[S, V]]:
        """What is held: id -> (stamp, parse); a copy."""
        return dict(self._held)

    def refresh(
        self,
        known: dict[str, tuple[S, V]],
        current: Iterable[tuple[str, S, R | None]],
        parse: Callable[[str, R], V],
    ) -> dict[str, V]:
        """The parse of each current definition, in order: the known one where the row came
        without its raw definition (the reader knew its stamp), else `parse(id, raw)`, held
        from now on. Ids not current are forgotten."""
        out: dict[str, V] = {}
        for id, stamp, raw in current:
            if raw is None:
                held_stamp, value = known[id]
                if held_stamp != stamp:
                    raise ValueError(f"{id}: no definition sent for unknown stamp {stamp!r}")
            else:
                value = parse(id, raw)
                self._held[id] = (stamp, value)
            out[id] = value
        for id in [i for i in self._held if i not in out]:
            del self._held[id]
        return out
