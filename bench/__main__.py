"""``python -m bench <scenario> [--size N] [--quick] [--database sqlite|URL ...]``."""

from __future__ import annotations

import argparse

import orjson

from bench import audit, decide, ingest, match, read, scale, transfer
from bench.machine import DEFAULT_PG

SCENARIOS = {
    "audit": (audit.run, 1_000_000, 2_000),
    "ingest": (ingest.run, 2000, 50),
    "decide": (decide.run, 2000, 200),
    "match": (match.run, 2000, 200),
    "read": (read.run, 1_000_000, 10_000),
    "scale": (scale.run, 1_000_000, 20_000),
    "transfer": (transfer.run, 2000, 80),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument(
        "--size",
        type=int,
        help="people; entries for audit; resources for read and scale (default: the scenario's)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny size, to prove it still runs")
    parser.add_argument(
        "--database",
        action="append",
        help="'sqlite' or a PostgreSQL URL; repeatable (default: both, PostgreSQL at "
        f"{DEFAULT_PG})",
    )
    args = parser.parse_args()
    fn, default_size, quick_size = SCENARIOS[args.scenario]
    size = args.size or (quick_size if args.quick else default_size)
    result = fn(size, args.database or ["sqlite", DEFAULT_PG])
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
