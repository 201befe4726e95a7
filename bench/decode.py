"""Benchmark: CPU per record of `crm_contracts.decode_record`, the decode every consumer runs.

    .venv/bin/python -m bench.decode [--records 2000] [--repeat 7] [--kinds resolved,score]
    .venv/bin/python -m bench.decode --profile       # cProfile of one kind's loop, top functions

No broker, no database: the example event of each common type (`crm_contracts.examples`)
encoded once in binary mode and once in structured mode, then decoded `--records` times in a
loop; the figure is the best of `--repeat` loops (CPU time per record, in microseconds), so
that other work on the machine inflates it as little as possible.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable, Sequence

from crm_contracts import KafkaRecord, decode_record, encode_binary, encode_structured
from crm_contracts.contacts import CONTACT_CREATED, CONTACT_MERGED, CONTACT_UPDATED
from crm_contracts.examples import example_event
from crm_contracts.interactions import INTERACTION_RECORDED, INTERACTION_RESOLVED
from crm_contracts.scores import SCORE_CHANGED

KINDS: dict[str, str] = {
    "raw": INTERACTION_RECORDED,
    "resolved": INTERACTION_RESOLVED,
    "score": SCORE_CHANGED,
    "contact_created": CONTACT_CREATED,
    "contact_updated": CONTACT_UPDATED,
    "contact_merged": CONTACT_MERGED,
}
MODES: dict[str, Callable[..., KafkaRecord]] = {
    "binary": encode_binary,
    "structured": encode_structured,
}


def record_of(kind: str, mode: str) -> KafkaRecord:
    """The example event of a kind, encoded in a mode."""
    return MODES[mode](example_event(KINDS[kind]), key="c-7f3a9e")


def us_per_record(record: KafkaRecord, *, records: int, repeat: int) -> float:
    """Best CPU time per decode over `repeat` loops of `records` decodes, in microseconds."""
    value, headers = record.value, record.headers
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(records):
            decode_record(value, headers)
        best = min(best, time.process_time() - started)
    return best / records * 1e6


def profile(record: KafkaRecord, *, records: int, top: int) -> None:
    """cProfile of decoding one record `records` times; the top functions by own time."""
    value, headers = record.value, record.headers
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(records):
        decode_record(value, headers)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"any of {', '.join(KINDS)}")
    parser.add_argument("--modes", default=",".join(MODES), help="binary, structured")
    parser.add_argument("--profile", action="store_true", help="profile instead of timing")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    kinds = [kind for kind in args.kinds.split(",") if kind]
    modes = [mode for mode in args.modes.split(",") if mode]
    for kind in kinds:
        for mode in modes:
            record = record_of(kind, mode)
            decode_record(record.value, record.headers)  # warm: fails early if it is invalid
            if args.profile:
                print(f"== {kind} {mode}")
                profile(record, records=args.records, top=args.top)
                continue
            figure = us_per_record(record, records=args.records, repeat=args.repeat)
            size = len(record.value or b"")
            print(f"{kind:<16} {mode:<10} {figure:8.1f} us/record  ({size} bytes)")


if __name__ == "__main__":
    main()
