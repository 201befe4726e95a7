"""`crmctl simulate`: the traffic of a simulated business against a running back end."""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_stack.errors import StackError
from crm_stack.simulate.journeys import SimConfig, TrafficGenerator
from crm_stack.simulate.sender import RAW_TOPIC, SendStats


def add_parser(sub: Any) -> None:
    """Register `simulate` on crmctl's subcommands."""
    p = sub.add_parser(
        "simulate",
        help="send the traffic of a simulated business (journeys, not noise)",
        description="Send interactions of simulated customers to a running back end: most "
        "straight to Kafka (binary and structured CloudEvents), a share through ingest's HTTP "
        "API, with a few exact duplicates and late events. Ctrl-C stops it.",
    )
    p.add_argument("--rate", type=float, default=100.0, help="events per second (default 100)")
    p.add_argument(
        "--contacts", type=int, default=1000, help="people in the population (default 1000)"
    )
    p.add_argument("--seed", type=int, help="same seed, same events (default: random)")
    how_long = p.add_mutually_exclusive_group()
    how_long.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    how_long.add_argument("--events", type=int, help="events to send")
    p.add_argument(
        "--http-share",
        type=float,
        default=0.1,
        help="share sent through ingest's HTTP API (default 0.1)",
    )
    p.add_argument(
        "--structured-share",
        type=float,
        default=0.3,
        help="share of Kafka events in structured mode (default 0.3)",
    )
    p.add_argument(
        "--duplicate-share", type=float, default=0.01, help="share sent twice (default 0.01)"
    )
    p.add_argument(
        "--late-share",
        type=float,
        default=0.02,
        help="share of late, out-of-order events (default 0.02)",
    )
    p.add_argument(
        "--backfill-events", type=int, default=0, help="the first N events are history (default 0)"
    )
    p.add_argument(
        "--backfill-days", type=float, default=90.0, help="days the history spans (default 90)"
    )
    p.add_argument("--start", help="simulated start time, RFC 3339 (default: now)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the stack's)")
    p.add_argument("--topic", default=RAW_TOPIC, help=f"raw topic (default {RAW_TOPIC})")
    p.add_argument("--ingest-url", help="ingest's base URL (default: the stack's)")
    p.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="SOURCE=KEY",
        help="ingest API key of a source (default: created with a token of CRM_JWT_SECRET)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=cmd_simulate)


def cmd_simulate(stack: Any, args: argparse.Namespace) -> int:
    """Run the simulation until its duration or count is reached, or Ctrl-C."""
    seed = args.seed if args.seed is not None else random.randrange(1, 2**31)
    start = _start_time(args.start, args.backfill_events / args.rate)
    try:
        config = SimConfig(
            seed=seed,
            contacts=args.contacts,
            start=start,
            rate=args.rate,
            http_share=args.http_share,
            structured_share=args.structured_share,
            duplicate_share=args.duplicate_share,
            late_share=args.late_share,
            backfill_events=args.backfill_events,
            backfill_days=args.backfill_days,
        )
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    bootstrap = args.bootstrap or stack.bootstrap_servers
    ingest = (args.ingest_url or _ingest_url(stack)) if args.http_share > 0 else None
    print(
        f"crmctl: simulating {args.contacts:,} people at {args.rate:,.0f} events/s, seed {seed}, "
        f"to {bootstrap}" + (f" and {ingest}" if ingest else ""),
        file=sys.stderr,
        flush=True,
    )
    stats = asyncio.run(_simulate(stack, args, config, bootstrap, ingest))
    print(f"\ncrmctl: {stats.line()}", file=sys.stderr, flush=True)
    return 0 if stats.errors == 0 else 1


def _ingest_url(stack: Any) -> str:
    from crm_stack.services import KNOWN_SERVICES

    return str(stack.service_url(next(s for s in KNOWN_SERVICES if s.name == "ingest")))


def _start_time(text: str | None, backfill_seconds: float) -> datetime:
    if text is None:
        return datetime.now(UTC) + timedelta(seconds=backfill_seconds)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise StackError(f"--start {text!r} is not an RFC 3339 time") from exc
    if value.tzinfo is None:
        raise StackError("--start needs a time zone, e.g. 2026-11-23T09:00:00Z")
    return value


async def _api_keys(stack: Any, args: argparse.Namespace, ingest: str) -> dict[str, str]:
    given = dict(item.split("=", 1) for item in args.api_key if "=" in item)
    if given:
        return given
    import httpx

    from crm_kit.auth import issue_token
    from crm_kit.settings import ServiceSettings

    defaults = ServiceSettings(environment="development")
    token = issue_token(
        secret=stack.settings.jwt_secret.get_secret_value(),
        scopes=["apikeys:write"],
        subject="crmctl-simulate",
        issuer=defaults.jwt_issuer,
        audience=defaults.jwt_audience,
    )
    from crm_stack.simulate.sender import create_api_keys

    try:
        return await create_api_keys(ingest, token)
    except httpx.HTTPError as exc:
        raise StackError(
            f"cannot get ingest API keys from {ingest} ({exc}): is the back end running? "
            "Give keys with --api-key SOURCE=KEY, or send everything to Kafka with --http-share 0"
        ) from exc


async def _simulate(
    stack: Any, args: argparse.Namespace, config: SimConfig, bootstrap: str, ingest: str | None
) -> SendStats:
    from crm_stack.simulate.sender import Sender

    keys = await _api_keys(stack, args, ingest) if ingest else {}
    sender = Sender(bootstrap=bootstrap, topic=args.topic, ingest_url=ingest, api_keys=keys)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    interactive = sys.stderr.isatty()
    last = [0.0]

    def progress(stats: SendStats) -> None:
        if args.quiet:
            return
        if interactive:
            print(f"\r{stats.line()}", end="", file=sys.stderr, flush=True)
        elif stats.elapsed - last[0] >= 5:  # a log, not a terminal: a line every 5 s
            print(stats.line(), file=sys.stderr, flush=True)
            last[0] = stats.elapsed

    try:
        return await sender.run(
            iter(TrafficGenerator(config)),
            rate=args.rate,
            duration=args.duration if args.events is None else None,
            count=args.events if args.events is not None else (None if args.duration else 2**62),
            progress=progress,
            stop=stop,
        )
    finally:
        await sender.close()
