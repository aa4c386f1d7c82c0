"""`read_fit` reads a run file exactly as `az.from_netcdf` does, or hands it to it."""

import arviz as az
import h5py
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
        with h5py.File(path, "r") as file:
            netcdf._dataset(file["posterior"])


# --- write_fit: the file ArviZ writes --------------------------------------------------------


def _written_both_ways(fit, tmp_path):
    ours, theirs = tmp_path / "ours.nc", tmp_path / "theirs.nc"
    netcdf.write_fit(fit, ours)
    fit.to_netcdf(str(theirs), compress=False)
    return ours, theirs


@pytest.mark.parametrize(
    ("model", "method"),
    [
        ("random_intercept", "gibbs"),
        ("random_intercept", "cavi"),
        ("logistic_random_intercept", "gibbs"),
        ("linear", "exact"),
    ],
)
def test_write_fit_writes_the_file_arviz_writes(tiny_fit, tmp_path, netcdf_layout, model, method):
    ours, theirs = _written_both_ways(tiny_fit(model, "conjugate", method), tmp_path)
    assert netcdf_layout(ours) == netcdf_layout(theirs)
    _assert_same(az.from_netcdf(ours), az.from_netcdf(theirs))
    _assert_same(read_fit(ours), read_fit(theirs))


def test_write_fit_booleans_dimensions_without_coordinates_and_attributes(
    fit_factory, tmp_path, netcdf_layout
):
    fit = fit_factory(n_groups=3, diverging=5)
    gate.stamp_diagnostics(fit)
    fit.posterior["count"] = ("group", np.array([1, 2, 3]))
    fit.posterior["half"] = ("group", np.array([0.5, 1.5, 2.5], dtype=np.float32))
    fit.posterior["loc"] = xr.DataArray(1.5, attrs={"units": "none", "n": 3, "w": [0.1, 0.2]})
    fit.posterior["scale_tril"] = (("latent", "latent_col"), np.eye(2))  # no coordinates
    fit.posterior = fit.posterior.assign_coords(level=("level", [0.5, 0.9]))
    fit.posterior["band"] = ("level", np.array([1.0, 2.0]))
    fit.posterior.attrs.update(note="ünïcode", count=np.int64(4), rate=0.25, ids=(1, 2))
    fit.attrs.update(study="crafted", replicates=3)  # the file's root attributes
    netcdf._check_writable(fit)  # written by write_fit, not handed to ArviZ
    ours, theirs = _written_both_ways(fit, tmp_path)
    assert netcdf_layout(ours) == netcdf_layout(theirs)
    _assert_same(az.from_netcdf(ours), az.from_netcdf(theirs))
    _assert_same(read_fit(ours), az.from_netcdf(theirs))


@pytest.mark.parametrize(
    "change",
    [
        lambda posterior: posterior.assign(label=("group", np.array(["a", "b", "c"], object))),
        lambda posterior: posterior.assign_coords(tag=("group", ["x", "y", "z"])),
        lambda posterior: posterior.assign_attrs(names=["a", "b"]),
        lambda posterior: posterior.assign_attrs(matrix=np.eye(2)),
        lambda posterior: posterior.assign(count=("group", np.array([1, 2, 3], np.uint8))),
        lambda posterior: posterior.assign(tau_e=posterior.tau_e.assign_attrs(missing_value=-1.0)),
        lambda posterior: posterior.assign(
            count=xr.Variable(("group",), np.array([1, 2, 3]), encoding={"_FillValue": -1})
        ),
    ],
    ids=[
        "object data",
        "coordinate of no dimension",
        "list of str",
        "2-d attribute",
        "unsigned data",
        "a CF attribute",
        "encoding",
    ],
)
def test_write_fit_leaves_what_it_does_not_write_to_arviz(
    fit_factory, tmp_path, netcdf_layout, change
):
    fit = fit_factory(n_groups=3)
    fit.posterior = change(fit.posterior)
    with pytest.raises(netcdf._Unrecognised):
        netcdf._check_writable(fit)
    ours, theirs = _written_both_ways(fit, tmp_path)
    assert netcdf_layout(ours) == netcdf_layout(theirs)
    with h5py.File(ours, "r") as file:
        assert b"h5netcdf" in file.attrs["_NCProperties"]


def test_write_fit_refuses_what_arviz_refuses(fit_factory, tmp_path):
    fit = fit_factory(n_groups=3)
    fit.posterior.attrs["flag"] = True  # not a netCDF type
    with pytest.raises(Exception, match="boolean") as theirs:
        fit.to_netcdf(str(tmp_path / "theirs.nc"), compress=False)
    with pytest.raises(type(theirs.value), match="boolean"):
        netcdf.write_fit(fit, tmp_path / "ours.nc")
