"""A tiny study end to end: cached, resumable, atomic, failures recorded, Dask = local pool."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from study.cli import main
from study.config import load_study
from study.runner import LocalPool, _submit_all, read_failures, run_study
from study.runs import execute, expand, write_atomically

TINY = """
name = "tiny"
seeds = [0]

[[scenario]]
models = ["linear"]
n_obs = 40

[[scenario]]
models = ["random_intercept"]
n_groups = [3]
n_per_group = 5

[[fit]]
backend = "conjugate"
method = "exact"
settings = { num_draws = 50 }

[[fit]]
backend = "conjugate"
method = "gibbs"
settings = { num_chains = 2, num_burnin = 20, num_draws = 30 }

[[compare]]
vb = "conjugate/exact"
reference = "conjugate/gibbs"
"""


@pytest.fixture
def tiny_study(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(TINY))
    return load_study(path)


def _mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.nc")}


def test_tiny_study_runs_then_does_no_work(tiny_study, tmp_path):
    out = tmp_path / "out"
    first = run_study(tiny_study, out)
    assert first.ok and len(first.done) == 3 and not first.skipped
    assert sorted(p.stem for p in (out / "runs").glob("*.nc")) == sorted(
        run.key for run in expand(tiny_study)
    )
    before = _mtimes(out)
    second = run_study(tiny_study, out)
    assert second.done == [] and len(second.skipped) == 3
    assert _mtimes(out) == before


def test_run_files_are_written_uncompressed(tiny_study, tmp_path):
    """zlib saved 4 % on random draws and made writing 2.6x and reading 1.6x slower."""
    import h5py

    out = tmp_path / "out"
    run = expand(tiny_study)[-1]
    assert execute(run, out)["status"] == "done"
    with h5py.File(run.path(out), "r") as file:
        draws = [v for v in file["posterior"].values() if v.ndim >= 2]
        assert draws and all(v.compression is None for v in draws)


def test_deleted_run_is_redone_alone(tiny_study, tmp_path):
    out = tmp_path / "out"
    run_study(tiny_study, out)
    victim = out / "runs" / "sim_q3_r5-random_intercept-conjugate-gibbs-0.nc"
    victim.unlink()
    before = _mtimes(out)
    result = run_study(tiny_study, out)
    assert result.done == [victim.stem]
    after = _mtimes(out)
    assert {k: v for k, v in after.items() if k != victim.name} == before


def test_half_written_file_is_never_read(tiny_study, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run = expand(tiny_study)[0]

    class Killed(Exception):
        pass

    def half_written(idata, path):
        with open(path, "wb") as handle:
            handle.write(b"\x89HDF\r\n half a file")
        raise Killed

    monkeypatch.setattr("analysis.netcdf.write_fit", half_written)
    with pytest.raises(Killed):
        write_atomically(object(), run.path(out))
    monkeypatch.undo()
    assert not run.path(out).exists()
    assert list((out / "runs").iterdir()) == []
    # a corrupt file at the final path (say, written by hand) is redone, not read
    run.path(out).write_bytes(b"garbage")
    result = run_study(tiny_study, out)
    assert run.key in result.done


def test_failing_run_is_recorded_and_batch_goes_on(tiny_study, tmp_path):
    from dataclasses import replace

    from study.config import FitSpec

    broken = FitSpec(
        backend="numpyro",
        method="advi",
        settings={
            "learning_rate": 1e12,
            "max_steps": 200,
            "min_steps": 100,
            "window": 50,
            "num_draws": 20,
        },
        models=("linear",),
    )
    config = replace(tiny_study, fits=tiny_study.fits + (broken,))
    out = tmp_path / "out"
    result = run_study(config, out)
    assert len(result.done) == 3
    assert [f["key"] for f in result.failed] == ["sim_n40-linear-numpyro-advi-0"]
    rows = read_failures(out)
    assert rows[0]["key"] == "sim_n40-linear-numpyro-advi-0"
    assert rows[0]["error"] and "Traceback" in rows[0]["traceback"]
    assert not (out / "runs" / "sim_n40-linear-numpyro-advi-0.nc").exists()


def test_cli_exit_codes(tiny_study, tmp_path, capsys):
    study_file = tiny_study.source
    assert (
        main(["run", study_file, "--jobs", "1", "--out", str(tmp_path / "o"), "--no-report"]) == 0
    )
    assert main(["run", str(tmp_path / "missing.toml"), "--out", str(tmp_path)]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["run"]) == 2
    assert main(["run", study_file, "--jobs", "0"]) == 2
    assert main(["table", str(tmp_path / "nowhere")]) == 2
    assert main(["list"]) == 0
    assert "random_intercept_nc" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    assert "--dask-workers" in capsys.readouterr().out


def _posteriors(out):
    return {
        p.stem: xr.open_dataset(p, group="posterior").load() for p in (out / "runs").glob("*.nc")
    }


# The window and draws of the program-cache tests' ADVI (`test_padding`, `test_programs`,
# `test_jax_cache`) on the same padded shape: one program for all of them, built once in the
# suite and loaded from the program store by every other process (the pool's, Dask's).
NUMPYRO_ADVI = """
[[fit]]
backend = "numpyro"
method = "advi"
models = ["random_intercept"]
settings = { max_steps = 300, min_steps = 100, window = 50, num_draws = 20 }
"""


@pytest.mark.slow
def test_serial_pool_and_dask_give_bit_identical_draws(tmp_path):
    """The same numbers whoever runs the fits: this process (``--jobs 1``), a local pool of
    spawned workers (``--jobs 2``) and a Dask cluster (``--dask-workers 1``), JAX's draws too."""
    study = tmp_path / "tiny.toml"
    study.write_text(textwrap.dedent(TINY + NUMPYRO_ADVI))
    executors = {
        "serial": ("--jobs", "1"),
        "pool": ("--jobs", "2"),
        "dask": ("--dask-workers", "1"),
    }
    for folder, flags in executors.items():
        out = str(tmp_path / folder)
        assert main(["run", str(study), "--no-report", "--out", out, *flags]) == 0
    serial, pool, dask = (_posteriors(tmp_path / folder) for folder in executors)
    assert serial.keys() == pool.keys() == dask.keys() and len(serial) == 4
    assert any("numpyro-advi" in key for key in serial)
    for key in serial:
        for name in serial[key].data_vars:
            np.testing.assert_array_equal(serial[key][name], pool[key][name])
            np.testing.assert_array_equal(serial[key][name], dask[key][name])


def test_two_local_dask_clusters_run_side_by_side():
    """Each scheduler serves its health endpoints on a free port: before, both asked for 8787
    and the second warned (an error under pytest), so two CI workers could collide."""
    from study.runner import dask_executor

    with dask_executor(n_workers=1)() as first, dask_executor(n_workers=1)() as second:
        assert first.submit(sum, [1, 2]).result() == second.submit(sum, [3]).result() == 3


def _run(backend, method, n_groups=5, family=None, **settings):
    """A run of M0 with ``n_groups`` groups of 20 rows, for the scheduler's tests."""
    from study.runs import Run

    return Run(
        model="random_intercept",
        backend=backend,
        method=method,
        seed=0,
        n_groups=n_groups,
        n_per_group=20,
        family=family,
        settings=settings,
    )


def test_longest_runs_first_and_a_second_c_compiling_pymc_run_waits():
    from study.runner import next_run
    from study.runs import Run

    pymc_advi, nutpie = _run("pymc", "advi", 100), _run("pymc", "nuts", 100)
    pm_sample = _run("pymc", "nuts", 100, sampler="pymc")
    numpyro, gibbs = _run("numpyro", "nuts", 50), _run("conjugate", "gibbs", 5)
    assert next_run([gibbs, numpyro, pymc_advi], []) is numpyro  # the longest first
    assert next_run([gibbs, pm_sample, numpyro], [pymc_advi]) is numpyro  # the lock is busy
    assert next_run([gibbs, nutpie], [pymc_advi]) is nutpie  # nutpie compiles with numba
    assert next_run([pm_sample], [pymc_advi]) is pm_sample  # only PyMC left: side by side
    seed_2 = Run(**{**numpyro.__dict__, "seed": 2})
    assert next_run([seed_2, gibbs], [numpyro]) is gibbs  # its program is being compiled
    assert next_run([seed_2], [numpyro]) is seed_2
    # the worker that ran `numpyro` is free: the next seed reuses its program there
    assert next_run([pymc_advi, seed_2], [nutpie], after=[numpyro]) is seed_2
    # ... and so does PyMC ADVI at Q = 50 after Q = 100 (groups padded to 128, rows free),
    # though a C-compiling run holds PyTensor's lock on the other worker
    q50 = _run("pymc", "advi", 50)
    assert next_run([numpyro, q50], [pm_sample], after=[pymc_advi]) is q50
    assert next_run([numpyro, q50], [pm_sample], after=[gibbs]) is numpyro
    # closed-form fits hold no program: the next Gibbs seed does not jump the queue
    gibbs_2 = Run(**{**gibbs.__dict__, "seed": 2})
    assert next_run([gibbs_2, numpyro], [pymc_advi], after=[gibbs]) is numpyro


def test_runs_share_a_program_when_their_padded_shapes_do():
    from study.schedule import program_of

    def share(*runs):
        return len({program_of(r) for r in runs}) == 1

    assert share(_run("numpyro", "advi", 20), _run("numpyro", "advi", 50))  # 1,024 rows, 128 groups
    assert not share(_run("numpyro", "advi", 50), _run("numpyro", "advi", 100))  # 2,048 rows
    assert share(*(_run("pymc", "advi", q, "mean_field") for q in (20, 50, 100)))
    assert not share(_run("pymc", "advi", 20, "block"), _run("pymc", "advi", 50, "block"))
    assert share(_run("pymc", "advi", 5, "block"), _run("pymc", "advi", 10, "block"))  # 16 groups
    unpadded = (_run("pymc", "advi", q, pad_shapes=False) for q in (20, 50))
    assert not share(*unpadded)
    assert share(_run("pymc", "nuts", 5), _run("pymc", "nuts", 100))  # nutpie: any shape
    assert not share(_run("pymc", "nuts", 5, sampler="pymc"), _run("pymc", "nuts", 100))
    assert not share(_run("numpyro", "nuts", 20), _run("numpyro", "nuts", 50))


@pytest.mark.parametrize("backend", ["numpyro", "pymc"])
def test_nuts_of_m2_through_its_centred_form_shares_m0s_program(backend):
    """So the runner starts M2's run on the worker that has just sampled M0's (the same data and
    seed: its draws are kept there, `inference.ppl.programs.RecentDraws`)."""
    from dataclasses import replace

    from study.schedule import program_of

    for centring in ("centred", "auto"):
        m0 = _run(backend, "nuts", 20, centring=centring)
        assert program_of(replace(m0, model="random_intercept_nc")) == program_of(m0)
    m0 = _run(backend, "nuts", 20)
    assert program_of(replace(m0, model="random_intercept_nc")) != program_of(m0)


def _dies_on_linear_gibbs(run, out):
    """A worker task that kills its own process for one run, as a crash or the OOM killer would.

    Every run first sleeps, so that the dying run usually takes another one down with the pool.
    """
    time.sleep(1.0)
    if run.model == "linear" and run.method == "gibbs":
        os._exit(9)
    return execute(run, out)


def test_a_run_that_kills_its_worker_fails_alone(tiny_study, tmp_path):
    runs = expand(tiny_study)
    pool = LocalPool(2)
    try:
        records = {r["key"]: r for r in _submit_all(pool, runs, tmp_path, _dies_on_linear_gibbs)}
    finally:
        pool.shutdown()
    assert sorted(records) == sorted(run.key for run in runs)
    culprit = records.pop("sim_n40-linear-conjugate-gibbs-0")
    assert culprit["status"] == "failed" and "worker process died" in culprit["error"]
    assert all(record["status"] == "done" for record in records.values()), records


def _worker_state(name):
    """In a pool worker: the environment variable ``name``, the process's threads (Linux) after
    a matrix product (NumPy's BLAS starts its threads by then), the worker's parent, and whether
    JAX was imported (by the fork server it was forked from, or this module)."""
    import numpy as np

    jax_imported = "jax" in sys.modules
    matrix = np.ones((400, 400))
    matrix @ matrix
    tasks = Path("/proc/self/task")
    threads = len(list(tasks.iterdir())) if tasks.is_dir() else None
    return os.environ.get(name), threads, os.getppid(), jax_imported


def test_each_pool_has_the_environment_of_its_start_and_one_blas_thread(monkeypatch):
    """On Linux the workers are forked by a fork server that outlives a pool: a later pool's
    workers still get the parent's environment of when that pool started, BLAS runs in one
    thread (the worker's own thread and its parent watchdog, nothing more), and JAX was never
    imported in the fork server."""
    name = "VISTUDY_TEST_POOL_ENVIRONMENT"
    parents = set()
    for value in ("first", "second"):
        monkeypatch.setenv(name, value)
        before = dict(os.environ)
        pool = LocalPool(2)
        try:
            seen, threads, parent, jax_imported = pool.submit(_worker_state, name).result(120)
        finally:
            pool.shutdown()
        assert not jax_imported  # no process forks after JAX
        assert seen == value
        assert threads in (None, 2)
        assert dict(os.environ) == before  # the thread limits were the fork server's alone
        parents.add(parent)
    if sys.platform.startswith("linux"):  # both pools' workers came from one fork server
        assert len(parents) == 1 and os.getpid() not in parents


def test_figure_workers_do_not_inherit_the_sigterm_handler(tmp_path):
    """The pool closes its forked children with SIGTERM: under `vistudy`'s handler they printed
    a `StudyStopped` traceback (6 closings of 30). They draw with SIGTERM's default action."""
    script = (
        "import signal, sys; from pathlib import Path; import matplotlib.pyplot as plt; "
        "from study.report import can_fork, draw_figures; assert can_fork(); "
        "from study.runner import stop_on_signals; stopping = stop_on_signals(); "
        "stopping.__enter__(); assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL\n"
        "def draw():\n"
        "    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL\n"
        "    return plt.figure(figsize=(1, 1))\n"
        "for _ in range(5):\n"
        "    draw_figures([(draw, Path(sys.argv[1]) / f'{i}.png') for i in range(4)], jobs=2)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"{i}.png" for i in range(4)]


def test_figures_drawn_by_two_processes_are_those_of_one(tmp_path):
    """`draw_figures` forks: the same files, byte for byte, as one process draws."""
    from study.report import write_figures

    path = tmp_path / "groups.toml"
    groups = (  # the tiny study with two numbers of groups and block CAVI against Gibbs
        TINY.replace("n_groups = [3]", "n_groups = [3, 4]")
        .replace('method = "exact"', 'method = "cavi"\nfamily = "block"')
        .replace('vb = "conjugate/exact"', 'vb = "conjugate/cavi:block"')
    )
    path.write_text(groups)
    study = load_study(path)
    one, two = tmp_path / "one", tmp_path / "two"
    run_study(study, one)
    (two / "runs").mkdir(parents=True)
    for run in (one / "runs").glob("*.nc"):
        (two / "runs" / run.name).write_bytes(run.read_bytes())
    serial = write_figures(one, study, jobs=1)
    script = (
        "import sys; from pathlib import Path; from study.config import load_study; "
        "from study.report import can_fork, write_figures; assert can_fork(); "
        "paths = write_figures(Path(sys.argv[2]), load_study(sys.argv[1]), jobs=2); "
        "print('\\n'.join(str(p) for p in paths))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(two)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    forked = [Path(line) for line in done.stdout.split()]
    assert [p.name for p in serial] == [p.name for p in forked]
    assert {p.name.split("_")[0] for p in serial} == {"ratio", "heatmap", "overlay", "shrinkage"}
    for a, b in zip(serial, forked, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_a_worker_settles_its_heap_after_each_run_and_a_user_session_is_left_alone(
    tiny_study, tmp_path, monkeypatch
):
    """A study worker collects each run's garbage and freezes the survivors (its compiled
    programs) out of later collections; `execute` in anyone else's process freezes nothing."""
    import gc

    from study.runs import execute

    run = expand(tiny_study)[0]
    freezes = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(run.key))
    assert execute(run, tmp_path / "here")["status"] == "done"
    assert freezes == []
    monkeypatch.undo()
    script = (
        "import gc, os, sys; from study.config import load_study; from study.runs import "
        "execute, expand; from study.runner import worker_init\n"
        "worker_init(os.getppid()); assert gc.get_freeze_count() == 0\n"
        "run = expand(load_study(sys.argv[1]))[0]\n"
        "assert execute(run, sys.argv[2])['status'] == 'done'\n"
        "print(gc.get_freeze_count(), gc.get_count()[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "tiny.toml"), str(tmp_path / "worker")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    frozen_in_worker, young = (int(v) for v in done.stdout.split())
    assert frozen_in_worker > 10_000 and young < 100
