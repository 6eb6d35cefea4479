"""The research engines' rules: which engine a ``--cluster`` value picks, and which values are refused."""

from __future__ import annotations

import pytest

from shiol_lib.domain.engines import ENGINES, require_engine, resolve_cluster
from shiol_lib.errors import ClusterError


@pytest.mark.parametrize(
    ("cluster", "default", "engine"),
    [
        (None, None, "none"),
        ("", None, "none"),
        (None, "tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        (" LOCAL ", "tcp://10.0.0.5:8786", "local"),
        ("None", None, "none"),
        ("tcp://Host:8786", None, "tcp://Host:8786"),
    ],
)
def test_the_option_wins_over_the_setting_and_names_are_case_blind(cluster, default, engine):
    assert resolve_cluster(cluster, default) == engine


@pytest.mark.parametrize("engine", [*ENGINES, "tcp://127.0.0.1:8786", "127.0.0.1:8786"])
def test_an_engine_or_an_address_is_accepted_as_is(engine):
    assert require_engine(engine) == engine


@pytest.mark.parametrize("engine", ["not-an-address", "Local", "dask"])
def test_anything_else_is_refused_naming_it(engine):
    with pytest.raises(ClusterError, match=f"cluster '{engine}' is not 'none', 'local' or a scheduler address") as err:
        require_engine(engine)
    assert err.value.address == engine
