"""The ``vistudy`` command line: run studies, reproduce the VI1 table, build tables and figures.

Exit codes: 0 everything worked, 1 some runs failed, 2 usage error (bad arguments or study file).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from study.config import StudyConfigError

logger = logging.getLogger("study")

EXIT_OK, EXIT_FAILED_RUNS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors raise instead of exiting, so main() returns 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vistudy`` and its sub-commands."""
    parser = _Parser(
        prog="vistudy",
        description="How good is mean-field VI? VB vs MCMC vs exact posteriors, as a study.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run a study file (TOML) into a results folder")
    run.add_argument("study", type=Path, help="study file, see studies/example.toml")
    _add_run_options(run)

    reproduce = commands.add_parser(
        "reproduce", help="reproduce the VI1 report's SD-ratio table (the main job)"
    )
    reproduce.add_argument(
        "--quick",
        action="store_true",
        help="Q = 5 and 20 only, same fits: a first look in under 2 minutes",
    )
    reproduce.add_argument(
        "--tiny", action="store_true", help="tiny settings, for tests (numbers are not meaningful)"
    )
    _add_run_options(reproduce)

    table = commands.add_parser("table", help="write the tables of a results folder")
    table.add_argument("out", type=Path, help="results folder")
    plot = commands.add_parser("plot", help="draw the figures of a results folder")
    plot.add_argument("out", type=Path, help="results folder")
    commands.add_parser("list", help="list models, backends, methods and data sets")
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=min(len(os.sched_getaffinity(0)), 4),
        help="local worker processes (default: the CPUs available, at most 4)",
    )
    parser.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:port)")
    parser.add_argument("--dask-workers", type=_positive_int, help="start a local Dask cluster")
    parser.add_argument("--no-report", action="store_true", help="skip tables and figures")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vistudy`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as stop:  # --help
        return int(stop.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _COMMANDS[args.command](args)
    except (StudyConfigError, FileNotFoundError, ValueError) as error:
        print(f"vistudy {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from study.config import load_study

    return _execute(load_study(args.study), args)


def _reproduce(args: argparse.Namespace) -> int:
    from study.reproduce import reproduction_study

    return _execute(reproduction_study(quick=args.quick, tiny=args.tiny), args)


def _execute(config, args: argparse.Namespace) -> int:
    from study.runner import dask_executor, run_study

    if args.scheduler and args.dask_workers:
        raise ValueError("--scheduler and --dask-workers: give one of them, not both")
    if args.scheduler or args.dask_workers:
        with dask_executor(args.scheduler, args.dask_workers)() as executor:
            result = run_study(config, args.out, executor=executor)
    else:
        result = run_study(config, args.out, jobs=args.jobs)
    logger.info(
        "%d runs done, %d already finished, %d failed (see %s)",
        len(result.done),
        len(result.skipped),
        len(result.failed),
        args.out / "failures.csv",
    )
    if not args.no_report:
        from study.report import write_report

        write_report(args.out, config)
    return EXIT_FAILED_RUNS if result.failed else EXIT_OK


def _table(args: argparse.Namespace) -> int:
    out = _results_folder(args.out)
    from study.report import write_tables

    for path in write_tables(out):
        print(path)
    return EXIT_OK


def _plot(args: argparse.Namespace) -> int:
    out = _results_folder(args.out)
    from study.report import write_figures

    for path in write_figures(out):
        print(path)
    return EXIT_OK


def _results_folder(out: Path) -> Path:
    if not (out / "runs").is_dir():
        raise FileNotFoundError(f"{out}: not a results folder (no runs/ inside)")
    return out


def _list(args: argparse.Namespace) -> int:
    from inference import FAMILIES, REGISTRY
    from models import DATASETS, MODELS

    print("models:")
    for spec in MODELS.values():
        print(f"  {spec.name:<27} {spec.label}  {spec.description}")
    print("fits (backend/method[:family]):")
    for entry in REGISTRY.values():
        shown = "all models" if entry.models is None else ", ".join(entry.models)
        print(f"  {entry.label:<27} {entry.role:<6} {shown}")
    print("variational families:")
    for name, text in FAMILIES.items():
        print(f"  {name:<27} {text.split(';')[0]}")
    print("data sets:")
    for name, loader in DATASETS.items():
        print(f"  {name:<27} {(loader.__doc__ or '').strip().splitlines()[0]}")
    return EXIT_OK


_COMMANDS = {
    "run": _run,
    "reproduce": _reproduce,
    "table": _table,
    "plot": _plot,
    "list": _list,
}


if __name__ == "__main__":
    sys.exit(main())
