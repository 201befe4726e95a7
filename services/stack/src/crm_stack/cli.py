"""crmctl: run the CRM back end on one machine.

crmctl up [--detach] [--services contacts,scoring]
                            start Postgres, the broker, topics, databases, services; supervise
crmctl status [--json]      each process: up/down, address, pid, restarts
crmctl restart SERVICE      restart one service gracefully (the supervisor starts it again)
crmctl down [--timeout S]   stop the edge, drain, stop the rest (--now: do not wait)
crmctl token --scope S      print a development bearer token the services accept
crmctl topics               create every topic of the registry (external brokers)
crmctl replay-dlt TOPIC     put the dead letters of TOPIC back on TOPIC (--dry-run first)
crmctl simulate             send the traffic of a simulated business (see --help)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from pydantic import AliasChoices, ValidationError

from crm_kit.deadletters import ReplayResult
from crm_stack.errors import StackError
from crm_stack.processes import current_python, spawn, terminate
from crm_stack.settings import StackSettings
from crm_stack.stack import Component, DrainMode, Stack
from crm_stack.supervisor import Supervisor


def _say(message: str, *, file: IO[str] | None = None) -> None:
    for line in message.splitlines() or [""]:
        print(f"crmctl: {line}", file=file or sys.stdout, flush=True)


def _table(components: list[Component]) -> str:
    rows = [("NAME", "STATE", "ADDRESS", "PID", "RESTARTS", "")]
    rows += [
        (
            c.name,
            c.state,
            c.address,
            str(c.pid or "-"),
            str(c.restarts) if c.kind == "service" else "",
            c.detail,
        )
        for c in components
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)).rstrip()
        for row in rows
    )


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


# -- up ------------------------------------------------------------------------------------
def cmd_up(stack: Stack, args: argparse.Namespace) -> int:
    if args.detach:
        return _up_detached(stack)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal stops it as Ctrl-C does
        signal.signal(sig, _raise_interrupt)
    display = _Display(stack)
    supervisor = Supervisor(
        stack, mode="foreground", on_event=display.event, drain_timeout=stack.settings.drain_timeout
    )
    try:
        supervisor.start()
    except KeyboardInterrupt:
        _say("interrupted while starting; stopped what had started")
        return 130
    return supervisor.run(on_tick=display.tick)


def cmd_supervise(stack: Stack, args: argparse.Namespace) -> int:
    """The background supervisor of `up --detach` (its output goes to logs/crmctl.log)."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    supervisor = Supervisor(
        stack, mode="background", on_event=_say, drain_timeout=stack.settings.drain_timeout
    )
    try:
        supervisor.start()
    except KeyboardInterrupt:
        _say("stopped while starting")
        return 130
    return supervisor.run()


def _up_detached(stack: Stack) -> int:
    """Start a background supervisor, relay its start-up output, return once all is ready."""
    stack.check_can_start()
    log = stack.supervisor_log
    log.parent.mkdir(parents=True, exist_ok=True)
    follower = _LogFollower(log)
    # The supervisor reads its settings from the environment: `--services` goes with them.
    env = {**os.environ, "CRM_STACK_SERVICES": ",".join(stack.settings.services) or "none"}
    proc, ref = spawn([current_python(), "-m", "crm_stack", "supervise"], log_path=log, env=env)
    deadline = time.monotonic() + stack.settings.ready_timeout + 120
    try:
        while True:
            follower.relay()
            code = proc.poll()
            if code is not None:
                follower.relay()
                return code or 2
            state = stack.load_state()
            sup = state.supervisor if state else {}
            if sup.get("state") == "running" and sup.get("process", {}).get("pid") == ref.pid:
                follower.relay()
                break
            if time.monotonic() > deadline:
                terminate(ref, timeout=60)
                raise StackError(f"the supervisor did not get the stack ready; see {log}")
            time.sleep(0.1)
    except KeyboardInterrupt:
        terminate(ref, timeout=60)  # it stops what it had started
        return 130
    print(_table(stack.status()))
    _say(f"running in the background, supervised (log: {log}); `crmctl status`, `crmctl down`")
    return 0


class _LogFollower:
    """Prints what a log file gains; from an error line on, to stderr."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.failed = False
        self._partial = ""

    def relay(self) -> None:
        try:
            with self.path.open("r", errors="replace") as file:
                file.seek(self.offset)
                text = file.read()
                self.offset = file.tell()
        except OSError:
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.failed = self.failed or line.startswith("crmctl: error:")
            print(line, file=sys.stderr if self.failed else sys.stdout, flush=True)


class _Display:
    """The foreground `up`: a status table that redraws on change, and recent events."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.interactive = sys.stdout.isatty()
        self.events: list[str] = []
        self.shown = ""
        self.next_draw = 0.0
        self.running = False

    def event(self, message: str) -> None:
        self.events = [*self.events, message][-8:]
        _say(message)

    def tick(self) -> None:
        self.running = True
        if time.monotonic() < self.next_draw:
            return
        self.next_draw = time.monotonic() + 1.0
        table = _table(self.stack.status())
        if table == self.shown:
            return
        self.shown = table
        if self.interactive:
            print("\x1b[2J\x1b[H", end="")
            recent = "\n".join(f"  {e}" for e in self.events[-5:])
            print(f"{table}\n\nrecent:\n{recent}")
        else:
            print(table)
        print("(Ctrl-C stops everything)", flush=True)


# -- status, restart, down -----------------------------------------------------------------
def cmd_status(stack: Stack, args: argparse.Namespace) -> int:
    components = stack.status()
    if args.json:
        print(json.dumps([asdict(c) for c in components], indent=2))
    else:
        print(_table(components))
    return 0 if all(c.state in ("up", "external") for c in components) else 3


def cmd_restart(stack: Stack, args: argparse.Namespace) -> int:
    started = time.monotonic()
    pid = stack.restart(args.service, timeout=args.timeout, on_progress=_say)
    _say(f"{args.service} restarted (pid {pid}), ready in {time.monotonic() - started:.1f}s")
    return 0


def cmd_down(stack: Stack, args: argparse.Namespace) -> int:
    timeout = stack.settings.drain_timeout if args.timeout is None else args.timeout
    report = stack.down(
        timeout=timeout, drain=DrainMode.REPORT if args.now else DrainMode.WAIT, on_progress=_say
    )
    _say(f"stopped {', '.join(report.stopped) or 'nothing (nothing was running)'}")
    return 0


# -- token, topics, replay -----------------------------------------------------------------
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
        ensure_topics(stack.bootstrap_servers, topic_specs(partitions=stack.settings.partitions))
    )
    print(f"crmctl: created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def cmd_replay_dlt(stack: Stack, args: argparse.Namespace) -> int:
    from crm_kit.deadletters import DeadLetterTopicMissing, replay_dead_letters
    from crm_kit.settings import ServiceSettings

    def progress(result: ReplayResult) -> None:
        verb = "would replay" if args.dry_run else "replayed"
        _say(
            f"... {verb} {result.replayed}, held back {result.held_back}, skipped {result.skipped}"
        )

    settings = ServiceSettings(kafka_bootstrap_servers=stack.bootstrap_servers)
    try:
        result = asyncio.run(
            replay_dead_letters(
                settings,
                args.topic,
                reason=args.reason,
                limit=args.limit,
                max_attempts=args.max_attempts,
                dry_run=args.dry_run,
                on_progress=progress,
            )
        )
    except DeadLetterTopicMissing as exc:
        raise StackError(f"{exc}: is {args.topic} a topic of the registry?") from exc
    _say(_replay_summary(args, result))
    return 0


def _replay_summary(args: argparse.Namespace, result: ReplayResult) -> str:
    dlt = f"{args.topic}.dlt"
    if args.dry_run:
        head = f"dry run, nothing published: would replay {result.replayed}"
    else:
        head = f"replayed {result.replayed}"
    lines = [f"{head} dead letters of {dlt} to {args.topic} (stopped: {result.ended})"]
    for reason, count in sorted(result.by_reason.items()):
        line = f"  {reason}: {count}"
        if args.dry_run:
            samples = result.samples.get(reason, [])
            more = f", and {count - len(samples)} more" if count > len(samples) else ""
            line += f" ({', '.join(samples)}{more})"
        lines.append(line)
    if result.held_back:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(result.held_back_by_reason.items()))
        lines.append(
            f"held back {result.held_back} that failed {args.max_attempts} times or more "
            f"({reasons}); they stay on {dlt} (see --max-attempts)"
        )
    if result.incomplete:
        lines.append(
            f"left {result.incomplete} that were dead-lettered without their value (too large "
            f"to copy whole); the originals are on {args.topic} at their x-error-offset"
        )
    if result.skipped:
        lines.append(f"skipped {result.skipped} with another reason than {args.reason}")
    return "\n".join(lines)


# -- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crmctl",
        description="Run the CRM event backbone on one machine.",
        epilog="Settings come from CRM_STACK_* variables (ports, state folder); "
        "KAFKA_BOOTSTRAP_SERVERS and CRM_DATABASE_URL use servers of your own.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything and supervise it; Ctrl-C stops it")
    up.add_argument(
        "--detach", action="store_true", help="supervise in the background, return once ready"
    )
    up.add_argument(
        "--services",
        metavar="NAMES",
        help="start only these services, comma-separated (CRM_STACK_SERVICES; default all; "
        "`none`: PostgreSQL and the broker only); every topic is created all the same",
    )
    up.set_defaults(run=cmd_up)
    sub.add_parser(
        "supervise", help="the background supervisor (`up --detach` starts it)"
    ).set_defaults(run=cmd_supervise)
    status = sub.add_parser("status", help="show each process")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=cmd_status)
    restart = sub.add_parser("restart", help="restart one service (graceful, then forced)")
    restart.add_argument("service", help="e.g. contacts")
    restart.add_argument(
        "--timeout", type=float, default=20.0, help="seconds after SIGTERM before SIGKILL"
    )
    restart.set_defaults(run=cmd_restart)
    down = sub.add_parser("down", help="stop the edge, drain, stop everything")
    down.add_argument(
        "--timeout",
        type=float,
        help="seconds to wait for the consumers to catch up (CRM_STACK_DRAIN_TIMEOUT, 30)",
    )
    down.add_argument(
        "--now", action="store_true", help="do not wait; say what is dropped, then stop"
    )
    down.set_defaults(run=cmd_down)
    token = sub.add_parser("token", help="print a development bearer token")
    token.add_argument("--scope", action="append", default=[], help="e.g. contacts:read (repeat)")
    token.add_argument("--subject", default="dev", help="the token's `sub`")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(run=cmd_token)
    sub.add_parser("topics", help="create every topic of the registry").set_defaults(run=cmd_topics)
    _add_replay(sub)
    from crm_stack.simulate.command import add_parser as add_simulate

    add_simulate(sub)
    return parser


def _add_replay(sub: Any) -> None:
    replay = sub.add_parser(
        "replay-dlt", help="republish the dead letters a topic had when the command started"
    )
    replay.add_argument("topic", help="the source topic, e.g. crm.interactions.raw.v1")
    replay.add_argument("--reason", help="only dead letters with this x-error-reason")
    replay.add_argument("--limit", type=int, help="at most this many")
    replay.add_argument(
        "--max-attempts",
        type=_positive,
        default=5,
        help="hold back events that have failed this many times (x-error-attempts; 5)",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="list what would be replayed; publish nothing"
    )
    replay.set_defaults(run=cmd_replay_dlt)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = {"services": args.services} if getattr(args, "services", None) is not None else {}
    try:
        settings = StackSettings(**given)
    except ValidationError as exc:
        _say(f"error: {_settings_problem(exc, given=set(given))}", file=sys.stderr)
        return 2
    try:
        return int(args.run(Stack(settings), args))
    except StackError as exc:
        _say(f"error: {exc}", file=sys.stderr)
        return 2


def _settings_problem(error: ValidationError, *, given: set[str]) -> str:
    """What is wrong with the settings, on one line, naming the variable or option."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        name = str(item["loc"][0]) if item["loc"] else ""
        problems.append(f"{_setting_name(name, given=given)}: {message}" if name else message)
    return "; ".join(problems)


def _setting_name(name: str, *, given: set[str]) -> str:
    if name in given:
        return f"--{name.replace('_', '-')}"
    field = StackSettings.model_fields.get(name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"CRM_STACK_{name.upper()}"


if __name__ == "__main__":
    sys.exit(main())
