"""XLA's fusion emitters on and off for NumPyro's programs: compile and run seconds by data size.

For each number of groups Q (20 rows per group) a fresh process with no persistent cache fits
NUTS (the grid's settings) and mean-field ADVI to M0 and M3 and reports the compile seconds
(tracing and lowering included) and run seconds summed over the four fits, and the run seconds
per NUTS leapfrog step and per ADVI step (the arms' floating point differs, so their NUTS
trajectories and ADVI's stopping step differ too: compare the costs per step). Two arms, run
alternately ``--repeats`` times:

- ``fast compile``: `inference.ppl.xla_compile.FAST_COMPILE_MAX_ROWS` above every size here, so
  every program is compiled with ``xla_cpu_use_fusion_emitters=False``;
- ``XLA default``: ``FAST_COMPILE_MAX_ROWS = 0``, XLA's defaults.

Medians, and the ratio of each arm to the first, are printed per Q. The engine's threshold is
where the compile seconds saved stop paying for the run seconds lost. On a shared machine
compare only numbers from one invocation.

``--options`` (not kept) instead sets the older emitter's program options beside further XLA
options, each a per-program compiler option (`inference.ppl.xla_compile.FAST_COMPILE_OPTIONS`):
``opt level 1`` and ``opt level 0`` (``xla_backend_optimization_level``: LLVM's optimisation of
the generated code), ``no expensive passes`` (``xla_llvm_disable_expensive_passes``); the first
arm is the engine's options. Measured 2026-11-27 at Q = 10 (2 cores, twice, medians of 2,
compile and run seconds summed over the four fits): the engine's 12.9 and 10.4 s compiling,
3.3 and 3.0 s running; opt level 1 12.3 and 10.3 s compiling, 3.1 and 2.9 s running (inside
the noise); opt level 0 10.6 and 7.8 s compiling (18-25 % less), 7.9 and 5.9 s running (2-2.4x:
NUTS 28-41 us per leapfrog step against 17-19, ADVI 154-211 us per step against 65-95); no
expensive passes 13.3 and 10.8 s, 3.2 and 2.9 s. Level 0 saves about 2.5 s of compiling per
four programs and loses 3-5 s of running at this size: not worth it even for the tests' tiny
data, whose statistical checks run thousands of steps.

    python benchmarks/xla_compile.py [--groups 5 50 100 200] [--repeats 3] [--options]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS_PER_GROUP = 20
FITS = (
    ("random_intercept", "nuts", {"centring": "centred", "intercept_centring": True}),
    ("random_intercept", "advi", {}),
    ("logistic_random_intercept", "nuts", {"centring": "auto", "target_accept": 0.95}),
    ("logistic_random_intercept", "advi", {}),
)
ARMS = {"fast compile": 10**9, "XLA default": 0}
"""Arm label: `FAST_COMPILE_MAX_ROWS` (the older emitter for every program, or for none)."""
OPTION_ARMS = {
    "engine": {},
    "opt level 1": {"xla_backend_optimization_level": 1},
    "opt level 0": {"xla_backend_optimization_level": 0},
    "no expensive passes": {"xla_llvm_disable_expensive_passes": True},
}
"""Arm label (``--options``): options added to the engine's `FAST_COMPILE_OPTIONS` (the older
emitter), for every program; brief programs keep `BRIEF_OPTIONS` over them."""
TOTALS = (
    "compile_s",
    "run_s",
    "nuts_compile_s",
    "nuts_s",
    "leapfrogs",
    "advi_compile_s",
    "advi_s",
    "advi_steps",
)
"""What a child adds up over its fits."""


def child(arm: str, n_groups: int) -> dict[str, float]:
    """In this (fresh) process: the four fits at ``n_groups`` with the options of ``arm``."""
    import inference
    import models
    from inference.ppl import xla_compile

    if arm in OPTION_ARMS:
        xla_compile.FAST_COMPILE_MAX_ROWS = 10**9
        xla_compile.FAST_COMPILE_OPTIONS = {**xla_compile.FAST_COMPILE_OPTIONS, **OPTION_ARMS[arm]}
    else:
        xla_compile.FAST_COMPILE_MAX_ROWS = ARMS[arm]
    out = dict.fromkeys(TOTALS, 0.0)
    for model, method, settings in FITS:
        data, _ = models.simulate(model, n_groups=n_groups, n_per_group=ROWS_PER_GROUP, seed=1)
        settings = {**settings, "num_warmup": 500} if method == "nuts" else settings
        idata = inference.fit(model, data, backend="numpyro", method=method, settings=settings)
        attrs = idata.posterior.attrs
        compile_s, run_s = float(attrs["compile_time_s"]), float(attrs["run_time_s"])
        out["compile_s"] += compile_s
        out["run_s"] += run_s
        out[f"{method}_compile_s"] += compile_s
        if method == "nuts":  # draws only: warm-up's steps are not recorded
            out["nuts_s"] += run_s
            out["leapfrogs"] += float(idata.sample_stats.n_steps.sum())
        else:
            out["advi_s"] += run_s
            out["advi_steps"] += float(attrs["vi_steps"])
    return out


def _fresh_process(arm: str, n_groups: int) -> dict[str, float]:
    env = {**os.environ, "VISTUDY_CACHE_DIR": "", "PYTHONPATH": str(ROOT)}
    output = subprocess.run(
        [sys.executable, __file__, "--child", arm, str(n_groups)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    """Parse arguments and compare the arms at each Q."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[5, 50, 100, 200])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--options", action="store_true", help="compare XLA's option arms")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    arms = list(OPTION_ARMS if args.options else ARMS)
    for n_groups in args.groups:
        runs = {label: [] for label in arms}
        for _ in range(args.repeats):
            for label in arms:
                runs[label].append(_fresh_process(label, n_groups))
        medians = {
            label: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
            for label, rs in runs.items()
        }
        print(
            f"\nQ = {n_groups} ({n_groups * ROWS_PER_GROUP} rows), NUTS + ADVI on M0 and M3, "
            f"median of {args.repeats}, load {os.getloadavg()[0]:.1f}:"
        )
        for values in medians.values():
            values["nuts_us"] = 1e6 * values["nuts_s"] / values["leapfrogs"]
            values["advi_us"] = 1e6 * values["advi_s"] / values["advi_steps"]
        for label, values in medians.items():
            print(
                f"  {label:19s} compile {values['compile_s']:6.2f} s"
                f" (NUTS {values['nuts_compile_s']:5.2f}, ADVI {values['advi_compile_s']:5.2f})"
                f"  run {values['run_s']:6.2f} s  NUTS {values['nuts_us']:6.1f} us/leapfrog*"
                f"  ADVI {values['advi_us']:6.1f} us/step"
            )
        first = medians[arms[0]]
        for label in arms[1:]:
            ratios = "  ".join(
                f"{key} {medians[label][key] / first[key]:5.2f}"
                for key in ("nuts_compile_s", "advi_compile_s", "run_s", "nuts_us", "advi_us")
            )
            print(f"  {label}/{arms[0]}  {ratios}")
    print("\n* run seconds of NUTS (warm-up included) per leapfrog step of its kept draws")


if __name__ == "__main__":
    main()
