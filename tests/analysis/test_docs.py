"""The Examples sections of the analysis docstrings run and give what they show."""

import doctest
import importlib

import pytest

MODULES = ["figures", "gate", "io", "predictive", "published", "ratios", "tables"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"analysis.{name}")
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0
