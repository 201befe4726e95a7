"""Run the scoring service: `python -m crm_scoring [serve|rebuild|reevaluate]`.

- `serve` (the default): faust worker and read API in one process, on CRM_SCORING_HTTP_PORT;
- `rebuild`: rebuild all scores from the topics' history (stop the service first);
- `reevaluate [--as-of TIME]`: re-score stale contacts once and publish tier/band changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from datetime import datetime


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m crm_scoring` and `crm-scoring`."""
    parser = argparse.ArgumentParser(prog="python -m crm_scoring", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the worker and the read API (default)")
    rebuild_cmd = sub.add_parser("rebuild", help="rebuild every score from the topics' history")
    rebuild_cmd.add_argument(
        "--idle-seconds", type=float, default=3.0, help="stop after this long without records"
    )
    reeval = sub.add_parser("reevaluate", help="re-score stale contacts once")
    reeval.add_argument("--as-of", type=datetime.fromisoformat, default=None)
    args = parser.parse_args(argv)

    from crm_kit.logs import configure_logging
    from crm_kit.settings import load_settings
    from crm_scoring.settings import ScoringSettings

    settings = load_settings(ScoringSettings)
    configure_logging("scoring", settings.log_level)
    if args.command == "rebuild":
        from crm_scoring.rebuild import rebuild

        result = asyncio.run(rebuild(settings, idle_seconds=args.idle_seconds))
        print(json.dumps(asdict(result)))
        return 0
    if args.command == "reevaluate":
        return _reevaluate(settings, args.as_of)
    from crm_kit.runtime import serve
    from crm_scoring.app import create_app

    serve(create_app(settings), settings)
    return 0


def _reevaluate(settings: object, as_of: datetime | None) -> int:
    from crm_kit.db import create_pool
    from crm_scoring.handlers import Context, reevaluate
    from crm_scoring.model import load_model
    from crm_scoring.settings import ScoringSettings

    assert isinstance(settings, ScoringSettings)

    async def run() -> tuple[int, int]:
        from crm_kit.migrations import migrate
        from crm_scoring.app import MIGRATIONS

        await migrate(settings.database_url, "scoring", MIGRATIONS)
        pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            ctx = Context(model=load_model(settings.model_path), settings=settings)
            return await reevaluate(pool, ctx, as_of=as_of)
        finally:
            await pool.close()

    evaluated, published = asyncio.run(run())
    print(json.dumps({"evaluated": evaluated, "published_to_outbox": published}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
