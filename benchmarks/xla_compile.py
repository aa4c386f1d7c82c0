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

Medians and the ratio fast/default are printed per Q. The engine's threshold is where the
compile seconds saved stop paying for the run seconds lost. On a shared machine compare only
numbers from one invocation.

    python benchmarks/xla_compile.py [--groups 5 50 100 200] [--repeats 3]
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


def child(max_rows: int, n_groups: int) -> dict[str, float]:
    """In this (fresh) process: the four fits at ``n_groups`` with ``FAST_COMPILE_MAX_ROWS``."""
    import inference
    import models
    from inference.ppl import xla_compile

    xla_compile.FAST_COMPILE_MAX_ROWS = max_rows
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


def _fresh_process(max_rows: int, n_groups: int) -> dict[str, float]:
    env = {**os.environ, "VISTUDY_CACHE_DIR": "", "PYTHONPATH": str(ROOT)}
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(max_rows), str(n_groups)],
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
    parser.add_argument("--child", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    for n_groups in args.groups:
        runs = {label: [] for label in ARMS}
        for _ in range(args.repeats):
            for label, max_rows in ARMS.items():
                runs[label].append(_fresh_process(max_rows, n_groups))
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
                f"  {label:13s} compile {values['compile_s']:6.2f} s"
                f" (NUTS {values['nuts_compile_s']:5.2f}, ADVI {values['advi_compile_s']:5.2f})"
                f"  run {values['run_s']:6.2f} s  NUTS {values['nuts_us']:6.1f} us/leapfrog*"
                f"  ADVI {values['advi_us']:6.1f} us/step"
            )
        fast, default = medians.values()
        ratios = "  ".join(
            f"{key} {fast[key] / default[key]:5.2f}"
            for key in ("nuts_compile_s", "advi_compile_s", "run_s", "nuts_us", "advi_us")
        )
        print(f"  fast/default  {ratios}")
    print("\n* run seconds of NUTS (warm-up included) per leapfrog step of its kept draws")


if __name__ == "__main__":
    main()
