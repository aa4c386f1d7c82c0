"""ADVI compile and run times of the levers kept (and dropped) in the engines, A/B in one process.

- ``padding``: ADVI in each PPL over the reproduction's Q = 5 ... 100 groups (N = 300 rows), with
  ``pad_shapes`` on and off: seconds spent compiling and running, and how many programs were
  compiled (`inference.ppl.padding`). Measured 2026-11-26 in one process, JAX's persistent cache
  and PyTensor's C cache warm (medians of 3): PyMC mean-field 2 programs instead of 5, compiling
  2.5 s instead of 4.9 and running 2.2 s instead of 1.8 (the padded effects add noise the
  convergence rule waits out); PyMC block 4 programs, 7.1 + 8.1 s against 7.5 + 7.6; NumPyro
  mean-field 1.4 + 1.2 s against 3.0 + 0.7, block 5.7 + 2.9 against 6.0 + 2.3. Cold, PyMC
  mean-field on M0 and M3 at Q = 5 ... 100 (20 rows per group) compiled in 31.3 s instead of
  34.5: most of a cold build is gcc compiling C modules that every shape needs. In the study's
  two worker processes the programs a grid shares are often built in both: issue 13's grid took
  122.1 s cold and 61.5 s warm with PyMC's padding, inside the range of the runs without it
  (119.3-123.0 s and 59.0-61.5 s), and the full reproduction 284.6 s and 164.9 s (294.5 s and
  162.4 s without).
- ``particles``: PyMC block ADVI (4 draws per step) with the particles in one vectorised graph
  or in PyMC's ``scan`` (`inference.ppl.pymc_engine.VECTORISED_PARTICLES`).
- ``persistent``: NumPyro block ADVI in fresh processes against an empty and then a filled JAX
  persistent cache (`inference.ppl.jax_cache`).
- ``host-loop`` (not built): what a whole optimisation on the device (``lax.while_loop`` with
  the convergence rule) could save at most. NumPyro ADVI at Q = 5 ... 100 runs the steps its
  rule took once as the engine does (a call of the compiled window per 500 steps, the losses
  copied to the host after each) and once as one call of a program compiled for all of them;
  the losses are identical. Measured 2026-11-26 (warm, medians of 3): mean-field 0.857 s
  against 0.803 s over the 5 fits, block 2.19 s against 2.14 s: about 10 ms per fit, about
  1 s over the reproduction's 77 NumPyro ADVI fits, not worth a second implementation of the
  rule in JAX.
- ``xla-opt`` (not kept): XLA's CPU backend optimisation level (``XLA_FLAGS``) for cold NumPyro
  block ADVI. Measured 2026-11-25 (Q = 20 + 100): level 0 compiled in 6.9 s instead of 9.5 and
  ran in 5.5 s instead of 2.3; level 1 compiled in 8.7 s (8 % less, 6 s of the reproduction's
  cold 330 s of compilation) at the same speed, not worth flags that must be set before JAX
  starts, in every process, and that split JAX's persistent cache.
- ``gcc-opt``: gcc's commands for PyTensor's C modules, cold PyMC block ADVI (M0, Q = 20 +
  100, an empty compile directory): the engine's precompiled header and ``-g0``
  (`inference.ppl.c_compile`, kept), PyTensor's own commands, and the engine's with ``-O1``
  (not kept). Measured 2026-11-27 (medians of 2): the engine compiled in 34.3 s, PyTensor's
  commands in 58.2 s, the engine with ``-O1`` in 28.5 s (its floating point may differ: not
  worth 6 s); before the header, ``-O1 -g0`` 45.7 s and ``-O1`` alone 54.2 s against 57.9 s,
  each at the same speed; 2026-11-25 on the logistic model,
  -O0 compiled in 21 s instead of 29.5 s and ran half as fast. With the header, M0 and M3,
  mean-field and block at Q = 20 (four fits, one process each way): 53.5 s compiling instead
  of 92.3 s, the same draws to the last bit.
- ``pytensor-mode`` (not kept): PyTensor's backend for PyMC's ADVI step function (M0, Q = 20,
  15 rows per group), two fresh processes on one new compile directory (cold, then warm).
  Measured 2026-11-27 (2 cores), mean-field: C (the default) compiled in 30.0 s cold and 3.0 s
  warm and ran 59 us per step warm; numba 31.3 s and 7.7 s, 238 us; C without elementwise
  fusion 48 s (more, smaller C modules) and 2.7 s, 124 us. Block: C 49.2 s and 4.9 s, 191 us;
  numba 43.8 s and 13.3 s, 247 us. JAX often fails to compile the step function ("Shapes must
  be 1D sequences of concrete values": shapes that follow the model's ``pm.Data`` dims are
  not static under ``jax.jit``). It compiled M0's mean-field q in 5 of 8 tries (3.6-5.5 s
  cold, then 169-228 us per step), M3's in 1 of 2, the block q in none of 3. Each step of
  the C function still runs three ops in Python (the normal draws and two ``Gemv`` through
  SciPy: PyTensor finds no BLAS to link against in a pip install), about half its time
  under cProfile.

Every arm runs ``--repeats`` times, alternating; medians are printed with the ratio. On a shared
machine compare only numbers from one invocation.

    python benchmarks/advi_compile.py [padding|particles|persistent|host-loop|xla-opt|gcc-opt
        |pytensor-mode ...]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time

from scratch import scratch_dir  # benchmarks/ is first on sys.path

GROUPS = (5, 10, 20, 50, 100)
PRIORS = {"a_e": 0.01, "b_e": 0.01, "a_u": 0.01, "b_u": 0.01}


def _data(n_groups: int, seed: int = 1):
    from models import simulate

    truth = {"tau_u": 4.0, "tau_e": 1.0}
    return simulate("random_intercept", n_groups=n_groups, n_obs=300, truth=truth, seed=seed)[0]


def _fit(backend: str, family: str, n_groups: int, **settings):
    from inference import fit

    idata = fit(
        "random_intercept",
        _data(n_groups),
        backend=backend,
        method="advi",
        family=family,
        settings=settings,
        priors=PRIORS,
        seed=1,
    )
    attrs = idata.posterior.attrs
    return attrs["compile_time_s"], attrs["run_time_s"], attrs["vi_steps"]


def padding_arm(pad: bool, family: str, backend: str = "numpyro") -> dict[str, float]:
    """ADVI of ``family`` over `GROUPS` from an empty program cache (PyMC: C modules cached)."""
    import jax

    from inference.ppl import numpyro_engine, pymc_engine

    numpyro_engine.clear_cache()
    pymc_engine.clear_cache()
    jax.clear_caches()
    compile_s = run_s = compiled = 0.0
    for n_groups in GROUPS:
        c, r, _ = _fit(backend, family, n_groups, pad_shapes=pad)
        compile_s, run_s, compiled = compile_s + c, run_s + r, compiled + (c > 0)
    return {"compile_s": compile_s, "run_s": run_s, "programs": compiled}


def particles_arm(vectorised: bool) -> dict[str, float]:
    """PyMC block ADVI at Q = 20 and 100 (programs built again, C modules cached on disk)."""
    from inference.ppl import pymc_engine

    pymc_engine.VECTORISED_PARTICLES = vectorised
    pymc_engine.clear_cache()
    out = {"compile_s": 0.0, "run_s": 0.0, "steps": 0.0}
    for n_groups in (20, 100):
        c, r, steps = _fit("pymc", "block", n_groups)
        out["compile_s"] += c
        out["run_s"] += r
        out["steps"] += steps
    out["ms_per_step"] = 1000 * out["run_s"] / out["steps"]
    return out


def host_loop_arm(family: str) -> dict[str, float]:
    """NumPyro ADVI of ``family`` over `GROUPS`: the seconds the engine's host loop over windows
    adds to the optimisation (the most a ``lax.while_loop`` on the device could save).

    For each Q the engine fits once (its program warm) to learn the steps S its rule takes; then
    S steps run as the engine runs them (S / window calls of the compiled window, the losses
    copied to the host after each) and as one call of a program compiled with a window of S
    steps. The two take the same updates from the same state, so their losses must agree.
    """
    from dataclasses import replace

    import numpy as np

    from inference import resolve_settings
    from inference.ppl import numpyro_engine
    from inference.ppl.padding import padding_of
    from models import get_model

    spec = get_model("random_intercept")
    priors = spec.priors(PRIORS)
    settings = resolve_settings("numpyro", "advi", family=family)
    out = {"windowed_s": 0.0, "one_call_s": 0.0, "one_call_compile_s": 0.0, "max_loss_diff": 0.0}
    for n_groups in GROUPS:
        data = _data(n_groups)
        _, _, steps = _fit("numpyro", family, n_groups)
        steps -= settings.average_steps
        padding = padding_of(data, enabled=settings.pad_shapes, dense=family != "mean_field")
        window_program = numpyro_engine._build_svi(spec, data, priors, settings, family, padding)
        started = time.perf_counter()
        whole = replace(settings, window=steps)
        one_program = numpyro_engine._build_svi(spec, data, priors, whole, family, padding)
        out["one_call_compile_s"] += time.perf_counter() - started
        windowed = numpyro_engine._SviRun(window_program, spec, data, 1, padding)
        one_call = numpyro_engine._SviRun(one_program, spec, data, 1, padding)
        started = time.perf_counter()
        losses = np.concatenate([windowed.run_window() for _ in range(steps // settings.window)])
        out["windowed_s"] += time.perf_counter() - started
        started = time.perf_counter()
        one_losses = one_call.run_window()
        out["one_call_s"] += time.perf_counter() - started
        diff = float(np.max(np.abs(losses - one_losses) / np.maximum(np.abs(losses), 1.0)))
        out["max_loss_diff"] = max(out["max_loss_diff"], diff)
    return out


def _child(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new Python process on this checkout with ``env`` set; its output."""
    env = {**os.environ, **env, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def _fresh_process(
    backend: str, family: str, groups: tuple[int, ...], *, setup: str = "", **env: str
) -> dict:
    """ADVI of ``family`` at each of ``groups`` in a new process with ``env`` set, after running
    ``setup``: wall time of the process, compile and run seconds summed over the fits."""
    code = (
        f"{setup}; from benchmarks.advi_compile import _fit; "
        f"times = [_fit({backend!r}, {family!r}, q)[:2] for q in {groups!r}]; "
        "print(sum(c for c, _ in times), sum(r for _, r in times))"
    )
    started = time.perf_counter()
    run = _child(code, **env)
    run.check_returncode()
    compile_s, run_s = (float(v) for v in run.stdout.split()[-2:])
    return {"process_s": time.perf_counter() - started, "compile_s": compile_s, "run_s": run_s}


def persistent_arm(cache: str) -> dict[str, float]:
    """Block ADVI at Q = 20 in a fresh process with the JAX cache in ``cache``."""
    return _fresh_process("numpyro", "block", (20,), VISTUDY_CACHE_DIR=cache)


def xla_arm(flags: str) -> dict[str, float]:
    """NumPyro block ADVI at Q = 20 and 100, cold (no JAX cache), with ``XLA_FLAGS=flags``."""
    return _fresh_process("numpyro", "block", (20, 100), VISTUDY_CACHE_DIR="", XLA_FLAGS=flags)


def _empty_compiledir() -> str:
    """``PYTENSOR_FLAGS`` for a new, empty PyTensor compile directory."""
    return f"base_compiledir={scratch_dir('vistudy-pytensor-')}"


def gcc_arm(cxxflags: str, precompiled: bool = True) -> dict[str, float]:
    """PyMC block ADVI at Q = 20 and 100 with an empty PyTensor compile directory (every C
    module compiled by gcc), with ``gcc__cxxflags`` (the default when empty) and the engine's
    precompiled header and ``-g0`` (`inference.ppl.c_compile`) or PyTensor's own commands."""
    flags = _empty_compiledir()
    flags += f",gcc__cxxflags={cxxflags}" if cxxflags else ""
    setup = f"from inference.ppl import c_compile; c_compile.ENABLED = {precompiled}"
    return _fresh_process("pymc", "block", (20, 100), setup=setup, PYTENSOR_FLAGS=flags)


def step_function_times(mode: str, family: str, n_groups: int = 20, steps: int = 3000) -> str:
    """Build PyMC's ADVI step function for M0 (``n_groups`` groups of 15 rows) with PyTensor's
    ``mode`` (``"C"``: the default; ``"C-nofusion"``: without elementwise fusion; ``"JAX"``,
    ``"NUMBA"``), from the engine's default settings of ``family``, and time it: seconds to
    build and compile, microseconds per step over ``steps`` steps at a fixed step size (the
    engine also sets the step size before each step) and the mean loss of the last 500 (the same
    run in every mode). Printed as one line for `pytensor_mode_arm`."""
    import numpy as np
    import pymc as pm
    import pytensor
    from pytensor.compile.mode import get_default_mode

    from inference import resolve_settings
    from inference.ppl.pymc_engine import _approximation
    from models import get_model, simulate

    spec = get_model("random_intercept")
    settings = resolve_settings("pymc", "advi", family=family)
    data = simulate(spec.name, n_groups=n_groups, n_per_group=15, seed=1)[0]
    modes = {"C": None, "C-nofusion": get_default_mode().excluding("fusion")}
    compile_kwargs = {"mode": modes.get(mode, mode)}
    started = time.perf_counter()
    model = spec.pymc_builder()(data, spec.priors())
    inference = _approximation(model, spec, family, settings.init_scale)
    learning_rate = pytensor.shared(np.float64(settings.learning_rate))
    step = inference.objective.step_function(
        obj_n_mc=settings.num_particles,
        obj_optimizer=pm.adam(learning_rate=learning_rate),
        score=True,
        compile_kwargs=compile_kwargs,
    )
    step()
    compiled = time.perf_counter()
    losses = [float(step()) for _ in range(steps)]
    per_step = (time.perf_counter() - compiled) / steps
    return f"{compiled - started} {1e6 * per_step} {np.mean(losses[-500:])}"


def pytensor_mode_arm(mode: str, family: str) -> dict[str, float]:
    """`step_function_times` in two fresh processes sharing a new, empty PyTensor compile
    directory: cold (every C module compiled by gcc, every numba function by LLVM) and warm
    (what the first process left on disk; JAX keeps nothing there)."""
    code = (
        "from benchmarks.advi_compile import step_function_times; "
        f"print(step_function_times({mode!r}, {family!r}))"
    )
    flags = _empty_compiledir()
    out = {}
    for label in ("cold", "warm"):
        run = _child(code, PYTENSOR_FLAGS=flags)
        if run.returncode:  # e.g. JAX: "Shapes must be 1D sequences of concrete values"
            errors = [line for line in run.stderr.splitlines() if "Error:" in line]
            reason = errors[-1] if errors else run.stderr[-300:]
            print(f"  {mode} {family} {label}: failed, {reason}")
            values = [float("nan")] * 3
        else:
            values = [float(v) for v in run.stdout.split()[-3:]]
        out |= {f"{label}_compile_s": values[0], f"{label}_us_per_step": values[1]}
    return out | {"loss": values[2]}


def _compare(name: str, arms: dict[str, callable], repeats: int) -> None:
    results: dict[str, list[dict[str, float]]] = {label: [] for label in arms}
    for _ in range(repeats):
        for label, arm in arms.items():
            results[label].append(arm())
    print(f"\n{name} (median of {repeats}, load {os.getloadavg()[0]:.1f}):")
    medians = {
        label: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for label, runs in results.items()
    }
    for label, values in medians.items():
        print(f"  {label:28s} " + "  ".join(f"{k} {v:8.3g}" for k, v in values.items()))
    if len(medians) < 2:
        return
    first, second = list(medians.values())[:2]
    ratios = {k: first[k] / second[k] for k in first if second.get(k)}
    print("  ratio first/second         " + "  ".join(f"{k} {v:6.2f}" for k, v in ratios.items()))


def main() -> None:
    """Parse arguments and run the chosen comparisons."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("levers", nargs="*", default=["padding", "particles", "persistent"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if "padding" in args.levers:
        for backend, family in itertools.product(("numpyro", "pymc"), ("mean_field", "block")):
            _compare(
                f"{backend} ADVI:{family}, Q = {GROUPS}, N = 300",
                {
                    "padded": lambda b=backend, f=family: padding_arm(True, f, b),
                    "unpadded": lambda b=backend, f=family: padding_arm(False, f, b),
                },
                args.repeats,
            )
    if "particles" in args.levers:
        _compare(
            "PyMC ADVI:block, 4 particles, Q = 20 + 100",
            {"vectorised": lambda: particles_arm(True), "scan": lambda: particles_arm(False)},
            args.repeats,
        )
    if "host-loop" in args.levers:
        for family in ("mean_field", "block"):
            _compare(
                f"numpyro ADVI:{family}, Q = {GROUPS}, N = 300: the windows' host loop",
                {"host loop": lambda f=family: host_loop_arm(f)},
                args.repeats,
            )
    if "xla-opt" in args.levers:
        arms = {
            "XLA default": lambda: xla_arm(""),
            "XLA backend opt level 0": lambda: xla_arm("--xla_backend_optimization_level=0"),
            "XLA backend opt level 1": lambda: xla_arm("--xla_backend_optimization_level=1"),
        }
        _compare("NumPyro ADVI:block Q = 20 + 100, cold", arms, args.repeats)
    if "gcc-opt" in args.levers:
        arms = {
            "engine (header, -g0)": lambda: gcc_arm(""),
            "PyTensor's (-O3 -g)": lambda: gcc_arm("", precompiled=False),
            "engine and -O1": lambda: gcc_arm("-O1"),
        }
        _compare("PyMC ADVI:block Q = 20 + 100, empty C cache", arms, args.repeats)
    if "pytensor-mode" in args.levers:
        modes = {"mean_field": ("C", "JAX", "NUMBA", "C-nofusion"), "block": ("C", "JAX", "NUMBA")}
        for family in ("mean_field", "block"):
            arms = {
                mode: lambda m=mode, f=family: pytensor_mode_arm(m, f) for mode in modes[family]
            }
            _compare(f"PyMC ADVI:{family} M0 Q = 20, the step function", arms, args.repeats)
    if "persistent" in args.levers:
        cache = str(scratch_dir("vistudy-jax-"))
        arms = {
            "empty cache (first process)": lambda: persistent_arm(str(scratch_dir("vistudy-jax-"))),
            "filled cache": lambda: persistent_arm(cache),
        }
        persistent_arm(cache)  # fill it
        _compare("NumPyro ADVI:block Q = 20, fresh process", arms, args.repeats)


if __name__ == "__main__":
    main()
