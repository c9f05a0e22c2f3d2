"""The names the README uses are importable from the top-level package."""

import ragtune


def test_every_advertised_name_resolves():
    for name in ragtune.__all__:
        assert getattr(ragtune, name) is not None, name


def test_unknown_names_fail_like_a_module_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Trainer'"):
        ragtune.Trainer  # noqa: B018
