import re
from pathlib import Path

import pytest

from shiol_lib.errors import ConfigError
from shiol_lib.settings import _VARIABLES, DEFAULT_NY_BASE_URL, load_settings

ENV_EXAMPLE = Path(__file__).parents[1] / ".env.example"


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
    settings = load_settings(
        {
            "SHIOL_HOME": str(tmp_path),
            "SHIOL_DB_PATH": str(tmp_path / "x.duckdb"),
            "SHIOL_MUSL_BASE_URL": "http://127.0.0.1:9999/",
            "SHIOL_MUSL_API_KEY": "secret-key-123",
            "SHIOL_HTTP_TIMEOUT_S": "2.5",
            "SHIOL_HTTP_MAX_BYTES": "65536",
        }
    )
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
    example = ENV_EXAMPLE.read_text()

    read = set(re.findall(r'"(SHIOL_[A-Z0-9_]+)"', source))
    assert read and read <= set(re.findall(r"^#?\s*(SHIOL_[A-Z0-9_]+)=", example, re.M))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SHIOL_LOCK_TIMEOUT_S", "nan", "SHIOL_LOCK_TIMEOUT_S='nan' is not a finite number; allowed: 0 to 86400"),
        ("SHIOL_HTTP_TIMEOUT_S", "inf", "SHIOL_HTTP_TIMEOUT_S='inf' is not a finite number"),
        ("SHIOL_HTTP_TIMEOUT_S", "-inf", "not a finite number"),
        ("SHIOL_API_PORT", "70000", "SHIOL_API_PORT='70000' is above the maximum 65535; allowed: 0 to 65535"),
        ("SHIOL_SMTP_PORT", "0", "SHIOL_SMTP_PORT='0' is below the minimum 1"),
        ("SHIOL_RETRY_BACKOFF_S", "0", "SHIOL_RETRY_BACKOFF_S='0' needs at least one delay, each a finite number"),
        ("SHIOL_RETRY_BACKOFF_S", "60,nan", "SHIOL_RETRY_BACKOFF_S='60,nan' needs at least one delay"),
        ("SHIOL_RETRY_BACKOFF_S", "60,-1", "each a finite number of seconds above 0"),
        ("SHIOL_RETRY_BACKOFF_S", "soon", "is not a comma-separated list of seconds"),
        ("SHIOL_HEARTBEAT_STALE_S", "20", "SHIOL_HEARTBEAT_STALE_S=20 must be at least twice SHIOL_HEARTBEAT_S=15"),
        ("SHIOL_HTTP_RETRIES", "1e9", "is not a whole number"),
    ],
)
def test_garbage_settings_are_refused_with_the_variable_value_and_range(tmp_path, name, value, message):
    with pytest.raises(ConfigError) as caught:
        load_settings({"SHIOL_HOME": str(tmp_path), name: value})
    assert message in str(caught.value)


def test_settings_survive_the_trip_through_the_environment(tmp_path):
    from shiol_lib.settings import settings_to_env

    given = load_settings(
        {
            "SHIOL_HOME": str(tmp_path),
            "SHIOL_RUNS_DIR": str(tmp_path / "elsewhere"),
            "SHIOL_HTTP_TIMEOUT_S": "0.3",
            "SHIOL_RETRY_BACKOFF_S": "1.5,2,4",
            "SHIOL_MUSL_API_KEY": "k",
            "SHIOL_ALERT_WEBHOOK_URL": "http://127.0.0.1:1/x",
            "SHIOL_API_PORT": "0",
            "SHIOL_HEARTBEAT_S": "0.1",
            "SHIOL_HEARTBEAT_STALE_S": "1",
        }
    )
    env = settings_to_env(given)
    assert load_settings(env) == given
    assert set(env) <= set(re.findall(r"^#?\s*(SHIOL_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))


def test_every_setting_has_one_default_and_the_planner_uses_it():
    from shiol_lib.scheduling.planner import PlannerConfig
    from shiol_lib.settings import Settings, default

    config = PlannerConfig()
    assert config.waiting_deadline_s == default("waiting_deadline_s") == Settings.waiting_deadline_s
    assert config.retry_backoff_s == default("retry_backoff_s")
    assert config.failure_alert_after == default("alert_after_failures")


def test_home_is_shiol_home_or_the_per_user_folder_never_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg"
    assert load_settings({"XDG_DATA_HOME": str(xdg)}).home == xdg.resolve() / "shiol"
    assert load_settings({"HOME": str(tmp_path / "u")}).home == (tmp_path / "u").resolve() / ".local/share/shiol"
    assert load_settings({"HOME": str(tmp_path / "u"), "XDG_DATA_HOME": "relative"}).home == (
        (tmp_path / "u").resolve() / ".local/share/shiol"
    )  # a relative XDG_DATA_HOME is ignored (XDG spec)
    assert load_settings({"SHIOL_HOME": str(tmp_path / "h"), "XDG_DATA_HOME": str(xdg)}).home == (
        (tmp_path / "h").resolve()
    )
    assert load_settings({"HOME": str(tmp_path / "u")}).home != tmp_path.resolve()


def test_logging_and_memory_settings_round_trip(tmp_path):
    from shiol_lib.settings import settings_to_env

    (tmp_path / "log").mkdir()
    given = load_settings(
        {
            "SHIOL_HOME": str(tmp_path),
            "SHIOL_LOG_FILE": str(tmp_path / "log" / "shiol.log"),
            "SHIOL_LOG_FORMAT": "JSON",
            "SHIOL_LOG_MAX_BYTES": "2048",
            "SHIOL_LOG_BACKUPS": "0",
            "SHIOL_STEP_MEMORY_MB": "0",
            "SHIOL_KERNEL_TEMPLATE": " Off",
        }
    )
    assert given.log_format == "json" and given.log_file == tmp_path.resolve() / "log" / "shiol.log"
    assert given.step_memory_mb == 0 and given.kernel_template == "off"
    assert load_settings({"SHIOL_HOME": str(tmp_path)}).kernel_template == "on"
    assert load_settings(settings_to_env(given)) == given
    with pytest.raises(ConfigError, match="SHIOL_LOG_FORMAT='xml' is not one of text, json"):
        load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="SHIOL_KERNEL_TEMPLATE='0' is not one of on, off"):
        load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_KERNEL_TEMPLATE": "0"})


NUMERIC = [v.env for v in _VARIABLES if v.parse.__qualname__.startswith("_number")]
URLS = [v.env for v in _VARIABLES if v.parse.__name__ in ("_url", "_optional_url")]
SECRETS = [v.env for v in _VARIABLES if v.parse.__name__ == "_secret"]


def test_the_rule_lists_cover_the_settings_they_are_for():
    assert {"SHIOL_API_PORT", "SHIOL_LAB_PORT", "SHIOL_SMTP_PORT", "SHIOL_HTTP_TIMEOUT_S"} <= set(NUMERIC)
    assert set(URLS) == {"SHIOL_MUSL_BASE_URL", "SHIOL_NY_BASE_URL", "SHIOL_ALERT_WEBHOOK_URL"}
    assert set(SECRETS) == {"SHIOL_MUSL_API_KEY", "SHIOL_API_TOKEN", "SHIOL_LAB_TOKEN", "SHIOL_LEDGER_KEY"}


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("digits", ["８０", "٨٠", "²", "1_0", "0x10"])
def test_every_number_is_ascii_digits_only(tmp_path, name, digits):
    with pytest.raises(ConfigError, match=rf"{name}='{digits}' is not a (whole )?number in ASCII digits"):
        load_settings({"SHIOL_HOME": str(tmp_path), name: digits})


def test_a_list_of_seconds_is_ascii_digits_only(tmp_path):
    with pytest.raises(ConfigError, match="SHIOL_RETRY_BACKOFF_S='60,１２０' is not a comma-separated list"):
        load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_RETRY_BACKOFF_S": "60,１２０"})


@pytest.mark.parametrize("name", URLS)
@pytest.mark.parametrize(
    "url",
    [
        "http://",
        "https://",
        "http:///path",
        "http://:8080",
        "http://host:port",
        "http://host:99999",
        "https://ホスト.example",
    ],
)
def test_every_url_must_name_a_host(tmp_path, name, url):
    with pytest.raises(ConfigError, match=rf"^{name}="):
        load_settings({"SHIOL_HOME": str(tmp_path), name: url})


@pytest.mark.parametrize("name", SECRETS)
def test_a_blank_key_is_refused_and_an_empty_one_is_unset(tmp_path, name):
    with pytest.raises(ConfigError, match=f"{name} is set but blank"):
        load_settings({"SHIOL_HOME": str(tmp_path), name: "   "})
    field = next(v.field for v in _VARIABLES if v.env == name)
    assert getattr(load_settings({"SHIOL_HOME": str(tmp_path), name: ""}), field) is None


def test_a_log_file_needs_an_existing_folder_and_must_not_be_one(tmp_path):
    with pytest.raises(ConfigError, match=r"SHIOL_LOG_FILE=.*the folder .*nowhere does not exist; create it"):
        load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_LOG_FILE": str(tmp_path / "nowhere" / "x.log")})
    with pytest.raises(ConfigError, match=r"SHIOL_LOG_FILE=.* is a folder; set it to a file inside it"):
        load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_LOG_FILE": str(tmp_path)})
