"""`read_fit` reads a run file exactly as `az.from_netcdf` does, or hands it to it."""

import arviz as az
import numpy as np
import pytest
import xarray as xr

from analysis import gate, netcdf
from analysis.netcdf import read_fit


def _assert_same(mine, theirs):
    assert mine.groups() == theirs.groups()
    for group in mine.groups():
        xr.testing.assert_identical(mine[group], theirs[group])
        for name, variable in mine[group].variables.items():
            assert variable.dtype == theirs[group][name].dtype, (group, name)
        assert {k: type(v) for k, v in mine[group].attrs.items()} == {
            k: type(v) for k, v in theirs[group].attrs.items()
        }


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("model", "method"),
    [("random_intercept", "gibbs"), ("random_intercept", "cavi"), ("linear", "exact")],
)
def test_run_files_read_as_arviz_reads_them(tiny_fit, tmp_path, model, method, compress):
    fit = tiny_fit(model, "conjugate", method)
    path = tmp_path / "fit.nc"
    fit.to_netcdf(str(path), compress=compress)
    _assert_same(read_fit(path), az.from_netcdf(path))


def test_booleans_strings_and_stamped_attrs(fit_factory, tmp_path):
    fit = fit_factory(n_groups=3, diverging=5)
    gate.stamp_diagnostics(fit)
    path = tmp_path / "fit.nc"
    fit.to_netcdf(str(path), compress=False)
    mine = read_fit(path)
    _assert_same(mine, az.from_netcdf(path))
    assert mine.sample_stats.diverging.dtype == bool and int(mine.sample_stats.diverging.sum()) == 5
    assert list(mine.posterior.coef.values) == ["intercept", "x1", "x2"]


def test_what_it_does_not_recognise_goes_to_arviz(fit_factory, tmp_path, monkeypatch):
    fit = fit_factory(n_groups=3)
    fit.posterior["label"] = ("group", np.array(["a", "b", "c"], dtype=object))
    fit.posterior["count"] = xr.Variable(
        ("group",), np.array([1, 2, 3]), encoding={"_FillValue": -1}
    )
    path = tmp_path / "fit.nc"
    fit.to_netcdf(str(path), compress=False)
    calls = []
    from_netcdf = az.from_netcdf
    monkeypatch.setattr(az, "from_netcdf", lambda p: calls.append(p) or from_netcdf(p))
    _assert_same(read_fit(path), from_netcdf(path))
    assert calls == [path]
    with pytest.raises(netcdf._Unrecognised):
        import h5py

        with h5py.File(path, "r") as file:
            netcdf._dataset(file["posterior"])
