"""Read and write a run file (NetCDF4 as ArviZ writes it through h5netcdf) straight with h5py.

`az.from_netcdf` opens every group through xarray and h5netcdf, which resolve each variable's
dimensions by following HDF5 object references: 60-85 ms per run file, 18-26 s of a report of
the VI1 reproduction's 305 runs, where the draws themselves take a few milliseconds to read.
`read_fit` reads the same file in about a third of that: dimension names come from the
netCDF-4 dimension ids (``_Netcdf4Dimid`` of each dimension, ``_Netcdf4Coordinates`` of each
variable), and it applies the few decodings these files need (booleans stored as ``int8``,
strings, ``_FillValue``). Reading an HDF5 attribute costs 30-70 us, more than many of the
arrays: it reads only the attributes it needs, never netCDF-4's references between variables
and dimensions (``DIMENSION_LIST``, ``REFERENCE_LIST``). The reproduction's 305 run files took
8.5-9.5 s reading every attribute and take 6.4-7.6 s (2026-11-26, three runs each,
alternating, on a slow day of this 2-core machine). It returns what `az.from_netcdf` returns,
loaded; whatever it does not recognise (another writer's conventions, a fill value that is not
NaN, a sub-group) makes it hand the file to `az.from_netcdf` instead, so it is never wrong,
only sometimes not faster. `write_fit` is its counterpart: the files ArviZ writes, written
straight with h5py.
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
_RESERVED_ATTRS = _NETCDF_ATTRS | {"coordinates", "missing_value", "scale_factor", "add_offset"}


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


# --- writing ------------------------------------------------------------------------------------


def write_fit(idata: Any, path: str | Path) -> None:
    """Write ``idata`` as `InferenceData.to_netcdf` (uncompressed) writes it, straight with h5py.

    ArviZ writes each group through xarray and h5netcdf: 0.1-0.2 s per run file, most of it
    h5netcdf looking up HDF5 objects, where the data take milliseconds to write (0.17 s of the
    0.19 s a block CAVI run of the reproduction took in its worker). This writes the same
    netCDF-4 layout in 10-25 ms: one HDF5 group per InferenceData group, a dimension scale per
    dimension (its coordinate values, or netCDF-4's placeholder for a dimension without one)
    with the file-wide ``_Netcdf4Dimid`` h5netcdf gives it, each variable attached to its
    scales, floats with a NaN ``_FillValue``, booleans as ``int8`` with ``dtype = "bool"``,
    strings as variable-length UTF-8. `tests/analysis/test_netcdf.py` checks that every object,
    attribute and dimension reference equals what ArviZ writes. Anything else (an encoding,
    a coordinate that is not a dimension's, dates, objects, attributes other than strings and
    numbers) goes to ArviZ's writer.

    Parameters
    ----------
    idata : arviz.InferenceData
        The fit.
    path : str or Path
        The file to write (replaced if it exists).
    """
    import h5py

    try:
        _check_writable(idata)
    except _Unrecognised as reason:
        logger.debug("%s written through InferenceData.to_netcdf: %s", path, reason)
        idata.to_netcdf(str(path), compress=False)
        return
    with h5py.File(path, "w", track_order=True) as file:  # as h5netcdf, for netCDF-C
        properties = f"version=2,h5py={h5py.__version__},hdf5={h5py.version.hdf5_version}"
        file.attrs["_NCProperties"] = np.array(
            properties, dtype=h5py.string_dtype("ascii", len(properties))
        )
        _write_attrs(file.attrs, idata.attrs)
        first_id = 0
        for name in idata.groups():
            first_id = _write_group(
                file.create_group(name, track_order=True), idata[name], first_id
            )


def _check_writable(idata: Any) -> None:
    """Raise `_Unrecognised` for anything `write_fit` leaves to ArviZ."""
    _check_attrs(idata.attrs, "the root")
    for name in idata.groups():
        dataset = idata[name]
        _check_attrs(dataset.attrs, name)
        if dataset.encoding:
            raise _Unrecognised(f"encoding of {name}")
        for key, size in dataset.sizes.items():
            if size == 0:
                raise _Unrecognised(f"empty dimension {name}/{key}")
        for key, variable in dataset.variables.items():
            where = f"{name}/{key}"
            _check_attrs(variable.attrs, where)
            if variable.encoding:
                raise _Unrecognised(f"encoding of {where}")
            if key in dataset.coords:
                if variable.dims != (key,) or variable.dtype.kind not in "ifU":
                    raise _Unrecognised(f"coordinate {where}")
            elif variable.dtype.kind not in "bif":
                raise _Unrecognised(f"{variable.dtype} data in {where}")


def _check_attrs(attrs: dict, where: str) -> None:
    for key, value in attrs.items():
        if key in _RESERVED_ATTRS or key.startswith("_"):  # netCDF's or xarray's to encode
            raise _Unrecognised(f"attribute {key} of {where}")
        if isinstance(value, list | tuple) and value:
            value = np.asarray(value)
        if isinstance(value, bool | np.bool_) or not isinstance(
            value, str | int | float | np.integer | np.floating | np.ndarray
        ):
            raise _Unrecognised(f"attribute {key} of {where}")
        if isinstance(value, np.ndarray) and (value.ndim > 1 or value.dtype.kind not in "iuf"):
            raise _Unrecognised(f"attribute {key} of {where}")


def _write_attrs(target: Any, attrs: dict) -> None:
    """As h5netcdf writes them: strings as they are, numbers as one-element arrays."""
    for key, value in attrs.items():
        target[key] = value if isinstance(value, str) else np.atleast_1d(np.asarray(value))


def _write_group(group: Any, dataset: Any, first_id: int) -> int:
    """Write one InferenceData group; its dimensions take ids from ``first_id`` on (netCDF-4's
    ids are unique in a file). Returns the next free id.

    In h5netcdf's order: the dimensions without a coordinate, then the variables (dimension
    coordinates and data) in the dataset's order; then each variable is attached to its
    dimensions' scales.
    """
    _write_attrs(group.attrs, dataset.attrs)
    ids = {dim: first_id + i for i, dim in enumerate(dataset.sizes)}
    scales = {}
    for dim, size in dataset.sizes.items():
        if dim not in dataset.coords:
            scales[dim] = group.create_dataset(dim, shape=(size,), dtype=">f4", track_order=True)
            scales[dim].make_scale(_PURE_DIMENSION + b"." + bytes(f"{size:10}", "ascii"))
    data = []
    for name, variable in dataset.variables.items():  # dimension coordinates and data
        item = _write_variable(group, name, variable)
        if name in dataset.coords:  # a dimension's (`_check_writable`)
            item.make_scale(name)
            item.attrs["_Netcdf4Coordinates"] = np.array([ids[name]], dtype=np.int32)
            scales[name] = item
        else:
            data.append((item, variable.dims))
    for dim, scale in scales.items():
        scale.attrs["_Netcdf4Dimid"] = np.array(ids[dim], dtype=np.int32)
    for item, dims in data:
        if dims:
            item.attrs["_Netcdf4Coordinates"] = np.array([ids[d] for d in dims], np.int32)
            item.attrs["_Netcdf4Dimid"] = np.array(ids[dims[0]], dtype=np.int32)
        for axis, dim in enumerate(dims):
            item.dims[axis].attach_scale(scales[dim])
    return first_id + len(ids)


def _write_variable(group: Any, name: str, variable: Any) -> Any:
    """One variable's dataset and attributes: floats with a NaN fill value, booleans as
    ``int8``, strings variable-length."""
    import h5py

    values = variable.values
    if values.dtype.kind == "U":
        item = group.create_dataset(
            name, data=values.astype(object), dtype=h5py.string_dtype(), track_order=True
        )
    elif values.dtype.kind == "f":
        item = group.create_dataset(name, data=values, fillvalue=np.nan, track_order=True)
        item.attrs["_FillValue"] = np.array([np.nan], dtype=values.dtype)
    elif values.dtype == bool:
        item = group.create_dataset(name, data=values.astype(np.int8), track_order=True)
        item.attrs["dtype"] = "bool"
    else:
        item = group.create_dataset(name, data=values, track_order=True)
    _write_attrs(item.attrs, variable.attrs)
    return item
