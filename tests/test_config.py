"""Settings from defaults, TOML, environment and command line, with clear errors."""

import pytest

from printerd.config import ConfigError, Settings, load_settings


def test_defaults():
    settings = load_settings({}, {})
    assert settings == Settings()
    assert settings.raw_listen == "tcp:9100"
    assert settings.http_listen == "tcp:8000:interface=127.0.0.1"
    assert settings.database == "var/printerd.sqlite3"
    assert settings.printer_name == "default"
    assert settings.max_connections == 50
    assert settings.synchronous == "FULL"


def test_precedence_is_toml_then_environment_then_command_line(tmp_path):
    config = tmp_path / "printerd.toml"
    config.write_text('max_connections = 7\nidle_timeout = 5\nprinter_name = "toml"\n')
    settings = load_settings(
        {"printer_name": "cli", "idle_timeout": None},
        {"PRINTERD_IDLE_TIMEOUT": "9", "PRINTERD_PRINTER_NAME": "env"},
        str(config),
    )
    assert settings.max_connections == 7
    assert settings.idle_timeout == 9.0
    assert settings.printer_name == "cli"


def test_config_file_can_come_from_the_environment(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text('database = "/tmp/x.sqlite3"\n')
    assert load_settings({}, {"PRINTERD_CONFIG": str(config)}).database == "/tmp/x.sqlite3"


@pytest.mark.parametrize("options, environ, named", [
    ({"max_connections": "0"}, {}, "--max-connections"),
    ({"idle_timeout": "nan"}, {}, "--idle-timeout"),
    ({}, {"PRINTERD_SYNCHRONOUS": "sometimes"}, "PRINTERD_SYNCHRONOUS"),
    ({"printer_name": "bad name!"}, {}, "--printer-name"),
])
def test_bad_values_name_the_setting(options, environ, named):
    with pytest.raises(ConfigError) as caught:
        load_settings(options, environ)
    assert str(caught.value).startswith(named)


def test_unknown_toml_key_and_bad_toml_are_errors(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text("max_conections = 3\n")
    with pytest.raises(ConfigError, match="max_conections: unknown setting"):
        load_settings({}, {}, str(config))
    config.write_text("max_connections = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, {}, str(config))
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, {}, str(tmp_path / "missing.toml"))
