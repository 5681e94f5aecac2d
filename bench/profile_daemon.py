"""Profile the real daemon against the bench farm: ``python -m bench.profile_daemon``.

Starts the feed farm, writes a config (as the benchmarks do), and runs
``mastwatch run --once`` under cProfile (``--cprofile FILE``) or any wrapper command
(``--wrap "py-spy record -o out.svg --subprocesses --"``), once cold on an empty store and
then ``--steady N`` times on the same store. Prints each run's in-daemon span and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.daemon_run import BenchConfig, Daemon, DaemonRun, write_config
from bench.farm import Farm


def _report(label: str, run: DaemonRun) -> None:
    span = run.span("daemon_started", "once_finished") if run.count("once_finished") else -1
    print(
        f"{label}: in daemon {span:.2f} s, wall {run.wall_seconds:.2f} s,"
        f" cpu {run.cpu_seconds:.2f} s, peak RSS {run.peak_rss_kib / 1024:.0f} MB,"
        f" rc {run.returncode},"
        f" polled {run.count('source_polled')}, matched {run.count('rule_matched')}",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    farm = Farm(args.feeds, args.items, hosts=min(50, args.feeds))
    await farm.start()
    try:
        with tempfile.TemporaryDirectory(prefix="mastwatch-profile-") as tmp:
            extra = f"[performance]\nparse_workers = {args.workers}\n" if args.workers else ""
            bench = BenchConfig(urls=farm.urls, baseline=False, extra=extra)
            config = write_config(Path(tmp), bench)
            wrap = shlex.split(args.wrap) if args.wrap else []
            if args.cprofile:
                wrap = [sys.executable, "-m", "cProfile", "-o", args.cprofile]
                wrap += ["-m", "mastwatch.cli"]
            cold_wrap = wrap if not args.profile_steady else []
            run = await _run_with(config, cold_wrap, cprofile=bool(args.cprofile))
            _report("cold", run)
            for n in range(args.steady):
                last = n == args.steady - 1
                steady_wrap = wrap if args.profile_steady and last else []
                run = await _run_with(config, steady_wrap, cprofile=bool(args.cprofile))
                _report(f"steady {n + 1}", run)
    finally:
        await farm.stop()


async def _run_with(config: Path, wrap: list[str], *, cprofile: bool) -> DaemonRun:
    daemon = Daemon(config, once=True)
    if wrap and cprofile:
        daemon.args = [*wrap, *daemon.args[1:]]
    elif wrap:
        daemon.args = [*wrap, *daemon.args]
    await daemon.start()
    return await daemon.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--workers", type=int, default=0, help="[performance] parse_workers")
    parser.add_argument("--steady", type=int, default=0, help="steady runs after the cold one")
    parser.add_argument("--cprofile", metavar="FILE", help="write a cProfile of the run here")
    parser.add_argument("--wrap", help="a command to prefix, e.g. py-spy record ... --")
    parser.add_argument(
        "--profile-steady", action="store_true", help="profile the last steady run, not cold"
    )
    asyncio.run(main_async(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
