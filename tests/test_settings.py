from pathlib import Path

import pytest

from shiol_lib.errors import ConfigError
from shiol_lib.settings import DEFAULT_NY_BASE_URL, load_settings


def test_defaults_live_under_shiol_home(tmp_path):
    settings = load_settings({"SHIOL_HOME": str(tmp_path)})
    assert settings.home == tmp_path.resolve()
    assert settings.db_path == tmp_path.resolve() / "var" / "shiol.duckdb"
    assert settings.snapshot_path == tmp_path.resolve() / "var" / "shiol.snapshot.duckdb"
    assert settings.runs_dir == tmp_path.resolve() / "runs"
    assert settings.ny_base_url == DEFAULT_NY_BASE_URL
    assert settings.musl_api_key is None
    assert settings.http_timeout_s == 10.0
    assert settings.http_max_bytes == 5_000_000


def test_explicit_values_win(tmp_path):
    settings = load_settings({
        "SHIOL_HOME": str(tmp_path),
        "SHIOL_DB_PATH": str(tmp_path / "x.duckdb"),
        "SHIOL_MUSL_BASE_URL": "http://127.0.0.1:9999/",
        "SHIOL_MUSL_API_KEY": "secret-key-123",
        "SHIOL_HTTP_TIMEOUT_S": "2.5",
        "SHIOL_HTTP_MAX_BYTES": "65536",
    })
    assert settings.db_path == tmp_path.resolve() / "x.duckdb"
    assert settings.musl_base_url == "http://127.0.0.1:9999"
    assert settings.musl_api_key == "secret-key-123" and "secret-key-123" not in repr(settings)
    assert settings.http_timeout_s == 2.5
    assert settings.http_max_bytes == 65536


def test_settings_are_frozen(tmp_path):
    settings = load_settings({"SHIOL_HOME": str(tmp_path)})
    with pytest.raises(AttributeError):
        settings.http_timeout_s = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SHIOL_HTTP_TIMEOUT_S", "soon", "SHIOL_HTTP_TIMEOUT_S='soon' is not a number"),
        ("SHIOL_HTTP_TIMEOUT_S", "0", "below the minimum"),
        ("SHIOL_HTTP_RETRIES", "2.5", "is not a whole number"),
        ("SHIOL_NY_BASE_URL", "data.ny.gov", "is not an http(s) URL"),
        ("SHIOL_HTTP_MAX_BYTES", "5e6", "SHIOL_HTTP_MAX_BYTES='5e6' is not a whole number"),
        ("SHIOL_HTTP_MAX_BYTES", "0", "below the minimum 1"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, name, value, message):
    with pytest.raises(ConfigError) as caught:
        load_settings({"SHIOL_HOME": str(tmp_path), name: value})
    assert message in str(caught.value)


def test_env_example_lists_every_variable_read():
    source = (Path(__file__).parents[1] / "shiol_lib" / "settings.py").read_text()
    example = (Path(__file__).parents[1] / ".env.example").read_text()
    import re

    read = set(re.findall(r'"(SHIOL_[A-Z0-9_]+)"', source))
    assert read and read <= set(re.findall(r"^#?\s*(SHIOL_[A-Z0-9_]+)=", example, re.M))
