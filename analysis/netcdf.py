"""Read a run file (NetCDF4 written by ArviZ through h5netcdf) straight from HDF5 with h5py.

`az.from_netcdf` opens every group through xarray and h5netcdf, which resolve each variable's
dimensions by following HDF5 object references: 60-85 ms per run file, 18-26 s of a report of
the VI1 reproduction's 305 runs, where the draws themselves take a few milliseconds to read.
`read_fit` reads the same file in about a third of that: dimension names come from the
netCDF-4 dimension ids (``_Netcdf4Dimid`` of each dimension, ``_Netcdf4Coordinates`` of each
variable), and it applies the few decodings these files need (booleans stored as ``int8``,
strings, ``_FillValue``). Reading an HDF5 attribute costs 30-70 us, more than many of the
arrays: it reads only the attributes it needs, never netCDF-4's references between variables
and dimensions (``DIMENSION_LIST``, ``REFERENCE_LIST``). The reproduction's 305 run files took
8.5-9.5 s reading every attribute and take 6.4-7.6 s (2026-11-26, three runs each, alternating,
on a slow day of this 2-core machine). It returns what `az.from_netcdf` returns, loaded; whatever it does not
recognise (another writer's conventions, a fill value that is not NaN, a sub-group) makes it
hand the file to `az.from_netcdf` instead, so it is never wrong, only sometimes not faster.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_NETCDF_ATTRS = frozenset(
    {
        "_Netcdf4Dimid",
        "_Netcdf4Coordinates",
        "DIMENSION_LIST",
        "CLASS",
        "NAME",
        "REFERENCE_LIST",
        "_FillValue",
        "dtype",
        "_nc3_strict",
    }
)
_PURE_DIMENSION = b"This is a netCDF dimension but not a netCDF variable"


class _Unrecognised(Exception):
    """A file feature `read_fit` leaves to `az.from_netcdf`."""


def read_fit(path: str | Path) -> Any:
    """The InferenceData of a run file, loaded (`az.from_netcdf` for a file it cannot read).

    Parameters
    ----------
    path : str or Path
        A NetCDF file written by `InferenceData.to_netcdf`.

    Returns
    -------
    arviz.InferenceData
        Equal, group by group, variables, coordinates and attributes, to
        ``az.from_netcdf(path)``.
    """
    import arviz as az
    import h5py

    try:
        with h5py.File(path, "r") as file:
            groups = {name: _dataset(group) for name, group in file.items()}
            attrs = _attrs(file.attrs)
    except _Unrecognised as reason:
        logger.debug("%s read through az.from_netcdf: %s", path, reason)
        return az.from_netcdf(path)
    return az.InferenceData(attrs=attrs, **groups)


def _dataset(group: Any) -> Any:
    import h5py
    import xarray as xr

    if not isinstance(group, h5py.Group):
        raise _Unrecognised(f"{group.name} is not a group")
    items = dict(group.items())
    names = {}  # each item's attribute names: reading a value costs 30-70 us, listing them less
    dims = {}
    for name, item in items.items():
        if not isinstance(item, h5py.Dataset):
            raise _Unrecognised(f"sub-group {item.name}")
        names[name] = tuple(item.attrs.keys())
        if "CLASS" in names[name] and item.attrs["CLASS"] == b"DIMENSION_SCALE":
            dims[int(item.attrs["_Netcdf4Dimid"])] = (name, item.shape[0])
    scales = {name for name, _ in dims.values()}
    variables, coords = {}, {}
    for name, item in items.items():
        if name in scales:
            if bytes(item.attrs.get("NAME", b"")).startswith(_PURE_DIMENSION):
                continue
            kind = item.dtype.kind
            values = item.asstr()[()].astype(str) if kind == "O" else _values(item, names[name])
            coords[name] = xr.Variable((name,), values, _attrs(item.attrs, names[name]))
            continue
        values = _values(item, names[name])
        variables[name] = xr.Variable(_dims(item, dims), values, _attrs(item.attrs, names[name]))
    return xr.Dataset(variables, coords=coords, attrs=_attrs(group.attrs))


def _dims(item: Any, dims: dict[int, tuple[str, int]]) -> tuple[str, ...]:
    if item.ndim == 0:
        return ()
    ids = item.attrs.get("_Netcdf4Coordinates")
    if ids is None or len(ids) != item.ndim or any(int(i) not in dims for i in ids):
        raise _Unrecognised(f"dimensions of {item.name}")
    names = tuple(dims[int(i)][0] for i in ids)
    if tuple(dims[int(i)][1] for i in ids) != item.shape:
        raise _Unrecognised(f"shape of {item.name}")
    return names


def _values(item: Any, names: tuple[str, ...]) -> np.ndarray:
    attrs = item.attrs
    if item.dtype.kind not in "biuf":
        raise _Unrecognised(f"{item.dtype} data in {item.name}")
    values = item[()]
    if "dtype" in names:
        if attrs["dtype"] not in ("bool", b"bool"):
            raise _Unrecognised(f"encoded dtype of {item.name}")
        return values.astype(bool)
    if "_FillValue" in names:
        fill = np.asarray(attrs["_FillValue"]).ravel()
        if values.dtype.kind != "f" or fill.size != 1 or not np.isnan(fill[0]):
            raise _Unrecognised(f"fill value of {item.name}")
    return values


def _attrs(attrs: Any, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The attributes a reader sees, decoded as h5netcdf does; netCDF-4's own are not read."""
    decoded = {}
    for key in attrs.keys() if names is None else names:
        if key in _NETCDF_ATTRS or key.startswith("_NC"):
            continue
        value = attrs[key]
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.ndarray):
            if value.dtype.kind in "OSU":
                raise _Unrecognised(f"attribute {key}")
            if len(value) == 1:  # as h5netcdf: a one-element array is its element
                value = value[0]
        decoded[key] = value
    return decoded
