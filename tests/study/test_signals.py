"""Rough edges of running studies: stopping (SIGTERM, SIGKILL of the parent), the results-folder
lock, an --out that cannot be written, and the same draws from a local pool and from Dask."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil  # a dependency of distributed
import pytest
import xarray as xr

from study.cli import main
from study.config import load_study
from study.runner import StudyLockedError, results_lock, run_study

ROOT = Path(__file__).resolve().parents[2]

# Two CAVI runs of a fraction of a second, then two Gibbs runs of a few seconds each (numpy only,
# one thread each): once both CAVI runs are logged as done, both workers are inside Gibbs runs.
SLOW = """
name = "slow"
seeds = [0, 1]

[[scenario]]
models = ["random_intercept"]
n_groups = [20]
n_per_group = 20

[[fit]]
backend = "conjugate"
method = "cavi"
settings = { num_draws = 100 }

[[fit]]
backend = "conjugate"
method = "gibbs"
settings = { num_chains = 2, num_burnin = 30000, num_draws = 100 }
"""

TINY = """
name = "tiny"
seeds = [0]

[[scenario]]
models = ["random_intercept"]
n_groups = [4]
n_per_group = 6

[[fit]]
backend = "conjugate"
method = "cavi"
family = "block"
settings = { num_draws = 50 }
"""


def _study(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def cli_temp():
    """The temporary directory of the `_cli` processes, removed after the test: a killed CLI
    leaves its fork server's folder (``pymp-*``) there. Short, unlike ``tmp_path``, for the
    fork server's socket path (at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vistudy-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cli(*args, temp):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "TMPDIR": str(temp),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "study.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _running(cli, timeout=120.0):
    """Wait until both quick runs are logged as done (both workers are then in a slow run);
    return the CLI's worker processes and the log lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while sum(" done " in line for line in lines) < 2:
        assert time.monotonic() < deadline and cli.poll() is None, "".join(lines)
        lines.append(cli.stderr.readline())
    time.sleep(0.5)
    workers = psutil.Process(cli.pid).children(recursive=True)
    assert len(workers) >= 2, workers
    return workers, lines


def _gone(processes, timeout):
    deadline = time.monotonic() + timeout
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


def _leftovers(out):
    return sorted(p.name for p in out.rglob(".*.tmp"))


@pytest.mark.slow
def test_sigterm_stops_the_workers_and_the_rerun_resumes(tmp_path, cli_temp):
    study, out = _study(tmp_path, SLOW), tmp_path / "out"
    cli = _cli("run", str(study), "--out", str(out), "--jobs", "2", "--no-report", temp=cli_temp)
    workers, _ = _running(cli)
    started = time.monotonic()
    cli.send_signal(signal.SIGTERM)
    _, stderr = cli.communicate(timeout=30)
    stopped = time.monotonic() - started
    assert cli.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr
    assert not _gone(workers, timeout=5.0), "worker processes left behind"
    assert stopped < 10.0
    assert _leftovers(out) == []
    finished = sorted(p.name for p in (out / "runs").glob("*.nc"))
    assert len(finished) == 2 and all("cavi" in name for name in finished), finished
    for name in finished:  # whatever was written is whole
        xr.open_dataset(out / "runs" / name, group="posterior").close()
    rerun = _cli("run", str(study), "--out", str(out), "--jobs", "2", "--no-report", temp=cli_temp)
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert "2 runs to do, 2 already finished" in stderr
    assert len(list((out / "runs").glob("*.nc"))) == 4


@pytest.mark.slow
def test_workers_exit_when_their_parent_is_killed(tmp_path, cli_temp):
    study, out = _study(tmp_path, SLOW), tmp_path / "out"
    cli = _cli("run", str(study), "--out", str(out), "--jobs", "2", "--no-report", temp=cli_temp)
    workers, _ = _running(cli)
    cli.kill()
    cli.wait(timeout=10)
    assert not _gone(workers, timeout=5.0), "orphaned workers still running"
    cli.stdout.close()
    cli.stderr.close()


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, capsys):
    study, out = _study(tmp_path, TINY), tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from study.runner import results_lock\n"
            "with results_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert main(["run", str(study), "--out", str(out), "--jobs", "1", "--no-report"]) == 2
        assert time.monotonic() - started < 5.0
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"process {holder.pid}" in message and "another vistudy" in message
        with pytest.raises(StudyLockedError):
            run_study(load_study(study), out)
        assert not (out / "runs").exists() or not list((out / "runs").iterdir())
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # the lock of a killed process does not block
    assert main(["run", str(study), "--out", str(out), "--jobs", "1", "--no-report"]) == 0


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with results_lock(tmp_path), results_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("command", ["run", "reproduce", "check"])
def test_an_out_with_a_file_in_the_way_is_one_line(tmp_path, capsys, command):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    first = {
        "run": ["run", str(_study(tmp_path, TINY))],
        "reproduce": ["reproduce", "--tiny"],
        "check": ["check", "lme4/sleepstudy", "--formula", "Reaction ~ Days + (1 | Subject)"],
    }[command]
    for out in (blocker, blocker / "inside"):
        assert main([*first, "--out", str(out)]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert error[-1] == f"vistudy {command}: --out {out}: a file is in the way (not a folder)"
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only /sys (Linux)")
def test_an_out_without_permission_is_one_line(tmp_path, capsys):
    out = "/sys/vistudy-test-out"
    assert main(["run", str(_study(tmp_path, TINY)), "--out", out]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"vistudy run: --out {out}: cannot be written (permission denied)"
    )
