"""crmctl: run the CRM back end on one machine.

crmctl up [--detach]     start Postgres, the broker, topics, databases, services
crmctl status [--json]   each process: up/down, address, pid
crmctl down              stop what `up` started
crmctl token --scope S   print a development bearer token the services accept
crmctl topics            create every topic of the registry (external brokers)
crmctl replay-dlt TOPIC  put dead letters of TOPIC back on TOPIC
crmctl simulate          send the traffic of a simulated business (see --help)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import asdict
from typing import Any

from crm_stack.errors import StackError
from crm_stack.settings import StackSettings
from crm_stack.stack import Component, Stack


def _table(components: list[Component]) -> str:
    rows = [("NAME", "STATE", "ADDRESS", "PID", "")]
    rows += [(c.name, c.state, c.address, str(c.pid or "-"), c.detail) for c in components]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)).rstrip()
        for row in rows
    )


def cmd_up(stack: Stack, args: argparse.Namespace) -> int:
    started = time.monotonic()
    stack.up(on_progress=lambda msg: print(f"crmctl: {msg}", flush=True))
    print(f"crmctl: all ready in {time.monotonic() - started:.1f}s", flush=True)
    if args.detach:
        print(_table(stack.status()))
        print("crmctl: running in the background; `crmctl status`, `crmctl down`")
        return 0
    return _watch(stack)


def _watch(stack: Stack) -> int:
    """Show a live status until Ctrl-C or SIGTERM, then stop everything."""

    def _stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    interactive = sys.stdout.isatty()
    last = ""
    try:
        while True:
            table = _table(stack.status())
            if table != last:
                if interactive:
                    print("\x1b[2J\x1b[H", end="")
                print(table + "\n(Ctrl-C stops everything)", flush=True)
                last = table
            time.sleep(1)
    except KeyboardInterrupt:
        print("\ncrmctl: stopping", flush=True)
    finally:
        stopped = stack.down()
        print(f"crmctl: stopped {', '.join(stopped) or 'nothing'}", flush=True)
    return 0


def cmd_status(stack: Stack, args: argparse.Namespace) -> int:
    components = stack.status()
    if args.json:
        print(json.dumps([asdict(c) for c in components], indent=2))
    else:
        print(_table(components))
    return 0 if all(c.state in ("up", "external") for c in components) else 3


def cmd_down(stack: Stack, args: argparse.Namespace) -> int:
    stopped = stack.down()
    print(f"crmctl: stopped {', '.join(stopped) or 'nothing (nothing was running)'}")
    return 0


def cmd_token(stack: Stack, args: argparse.Namespace) -> int:
    from crm_kit.auth import issue_token
    from crm_kit.settings import ServiceSettings

    defaults = ServiceSettings(environment="development")
    try:
        token = issue_token(
            secret=stack.settings.jwt_secret.get_secret_value(),
            scopes=args.scope,
            subject=args.subject,
            issuer=defaults.jwt_issuer,
            audience=defaults.jwt_audience,
            ttl_seconds=args.ttl,
        )
    except ValueError as exc:
        raise StackError(f"cannot issue that token: {exc}") from exc
    print(token)
    return 0


def cmd_topics(stack: Stack, args: argparse.Namespace) -> int:
    from crm_contracts import topic_specs
    from crm_kit.kafka import ensure_topics

    created = asyncio.run(
        ensure_topics(
            stack.bootstrap_servers, topic_specs(partitions=stack.settings.topic_partitions)
        )
    )
    print(f"crmctl: created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def cmd_replay_dlt(stack: Stack, args: argparse.Namespace) -> int:
    from crm_kit.deadletters import replay_dead_letters
    from crm_kit.settings import ServiceSettings

    settings = ServiceSettings(kafka_bootstrap_servers=stack.bootstrap_servers)
    result = asyncio.run(
        replay_dead_letters(settings, args.topic, reason=args.reason, limit=args.limit)
    )
    print(f"crmctl: replayed {result.replayed} dead letters to {args.topic}", end="")
    print(f" (skipped {result.skipped})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crmctl",
        description="Run the CRM event backbone on one machine.",
        epilog="Settings come from CRM_STACK_* variables (ports, state folder); "
        "KAFKA_BOOTSTRAP_SERVERS and CRM_DATABASE_URL use servers of your own.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything; Ctrl-C stops it")
    up.add_argument("--detach", action="store_true", help="return once ready, leave it running")
    up.set_defaults(run=cmd_up)
    status = sub.add_parser("status", help="show each process")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=cmd_status)
    sub.add_parser("down", help="stop what `up` started").set_defaults(run=cmd_down)
    token = sub.add_parser("token", help="print a development bearer token")
    token.add_argument("--scope", action="append", default=[], help="e.g. contacts:read (repeat)")
    token.add_argument("--subject", default="dev", help="the token's `sub`")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(run=cmd_token)
    sub.add_parser("topics", help="create every topic of the registry").set_defaults(run=cmd_topics)
    replay = sub.add_parser("replay-dlt", help="republish dead letters of a topic")
    replay.add_argument("topic", help="the source topic, e.g. crm.interactions.raw.v1")
    replay.add_argument("--reason", help="only dead letters with this x-error-reason")
    replay.add_argument("--limit", type=int, help="at most this many")
    replay.set_defaults(run=cmd_replay_dlt)
    from crm_stack.simulate.command import add_parser as add_simulate

    add_simulate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = StackSettings()
        return int(args.run(Stack(settings), args))
    except StackError as exc:
        print(f"crmctl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
