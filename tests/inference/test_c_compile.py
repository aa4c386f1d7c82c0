"""PyMC's C modules compiled with the common headers precompiled: gcc uses the header, the code
computes the same numbers, and the user's (and PyMC's) gcc flags come back on exit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from inference.ppl import c_compile


def _unique_function():
    """A PyTensor function whose C module no cache holds (a new constant in its fused code), and
    that constant."""
    import pytensor
    import pytensor.tensor as pt

    x = pt.dvector("x")
    constant = 1.0 + np.random.default_rng().random()  # a module of its own in every run
    return pytensor.function([x], pt.exp(x) * constant + pt.log1p(x * x)), constant


@pytest.fixture
def compile_commands(monkeypatch):
    import pytensor.link.c.cmodule as cmodule

    commands: list[list[str]] = []
    run = cmodule.output_subprocess_Popen

    def record(command, *args, **kwargs):
        commands.append(list(command))
        return run(command, *args, **kwargs)

    monkeypatch.setattr(cmodule, "output_subprocess_Popen", record)
    return commands


def test_modules_compile_with_the_precompiled_header_and_gcc_accepts_it(compile_commands, tmp_path):
    with c_compile.c_compilation():
        function, _ = _unique_function()
    modules = [c for c in compile_commands if "-include" in c]
    assert modules and all("-O3" in c for c in modules), compile_commands  # CLinker's alone
    command = modules[-1]
    header = command[command.index("-include") + 1]
    assert header.endswith("pytensor_headers.h") and "-g0" in command
    assert (Path(header).with_suffix(".h.gch")).stat().st_size > 1_000_000
    # gcc says when it finds a precompiled header it cannot use (and then parses the text)
    again = [str(tmp_path / "module.so") if arg.endswith(".so") else arg for arg in command]
    check = subprocess.run([*again, "-Winvalid-pch"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "pch" not in check.stderr, check.stderr


def test_the_module_computes_what_pytensors_default_module_computes(compile_commands):
    import pytensor

    values = np.linspace(-3.0, 3.0, 101)
    with c_compile.c_compilation():
        ours, constant = _unique_function()
    x = pytensor.tensor.dvector("x")
    expression = pytensor.tensor.exp(x) * constant + pytensor.tensor.log1p(x * x)
    theirs = pytensor.function([x], expression)  # PyTensor's flags: another module
    commands = [c for c in compile_commands if "-O3" in c]
    assert ["-include" in c for c in commands[-2:]] == [True, False]
    np.testing.assert_array_equal(ours(values), theirs(values))


def test_the_flags_come_back_and_pymcs_own_are_kept(monkeypatch):
    import pymc  # noqa: F401  (adds its gcc flags on import)
    import pytensor

    before = pytensor.config.gcc__cxxflags
    assert "-fno-exceptions" in before  # PyMC's
    with c_compile.c_compilation():
        inside = pytensor.config.gcc__cxxflags
    assert inside.split()[: len(before.split())] == before.split() and "-g0" in inside.split()
    assert pytensor.config.gcc__cxxflags == before
    monkeypatch.setattr(c_compile, "ENABLED", False)
    with c_compile.c_compilation():
        assert pytensor.config.gcc__cxxflags == before


def test_a_header_gcc_cannot_build_leaves_debug_info_off_alone(monkeypatch):
    import pytensor

    monkeypatch.setattr(c_compile, "HEADERS", ("<no_such_header_anywhere.h>",))
    monkeypatch.setattr(c_compile, "_headers_by_flags", {})
    with c_compile.c_compilation():
        flags = pytensor.config.gcc__cxxflags.split()
    assert "-g0" in flags and "-include" not in flags


def test_a_new_python_numpy_pytensor_or_gcc_gets_a_header_of_its_own(monkeypatch):
    """gcc does not check a precompiled header against the headers it was built from."""
    import pytensor

    def header_in_flags():
        with c_compile.c_compilation():
            flags = pytensor.config.gcc__cxxflags.split()
        return flags[flags.index("-include") + 1]

    monkeypatch.setattr(c_compile, "_build", lambda header, command: header)  # no gcc
    monkeypatch.setattr(c_compile, "_headers_by_flags", {})
    today = header_in_flags()
    monkeypatch.setattr(c_compile, "_headers_by_flags", {})
    monkeypatch.setattr(c_compile, "_versions", lambda: ("3.11.7", "2.4.6", "2.38.3", "gcc 99"))
    assert header_in_flags() != today
