"""Settings from defaults, TOML, environment and command line, with clear errors."""

import pytest

from printerd.config import ConfigError, PrinterConfig, Settings, load_settings


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


def test_one_printer_is_printer_name_on_raw_listen_with_the_top_level_settings():
    (printer,) = load_settings({"printer_name": "till", "raw_listen": "tcp:9200"}, {}) \
        .printer_configs()
    assert printer == PrinterConfig(name="till", listen="tcp:9200", emulation="epson",
                                    maker="EPSON", model="TM-T88V", serial="PRINTERD0001",
                                    two_byte_encoding="gb18030")


def test_printers_take_listener_strings_and_tables_with_top_level_defaults(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text(
        'printer_serial = "SHOP7"\n'
        'two_byte_encoding = "big5"\n'
        "[printers]\n"
        'kitchen = "tcp:9100"\n'
        "[printers.bar]\n"
        'listen = "tcp:9101"\n'
        'emulation = "star"\n'
        'model = "TSP654II"\n'
        'two_byte_encoding = "shift-jis"\n'
        "two_byte_at_start = true\n")
    kitchen, bar = load_settings({}, {}, str(config)).printer_configs()
    assert kitchen == PrinterConfig(name="kitchen", listen="tcp:9100", emulation="epson",
                                    maker="EPSON", model="TM-T88V", serial="SHOP7",
                                    two_byte_encoding="big5")
    assert bar == PrinterConfig(name="bar", listen="tcp:9101", emulation="star", maker="STAR",
                                model="TSP654II", serial="SHOP7", two_byte_encoding="shift_jis",
                                two_byte_at_start=True)


def test_printers_as_json_from_the_environment_and_the_command_line():
    printers = ('{"bar": {"listen": "tcp:9101", "emulation": "star", "maker": "Star Micronics"},'
                ' "kitchen": "tcp:9100"}')
    from_env = load_settings({}, {"PRINTERD_PRINTERS": printers, "PRINTERD_EMULATION": "star"})
    bar, kitchen = from_env.printer_configs()
    assert (bar.emulation, bar.maker, bar.model) == ("star", "Star Micronics", "TSP143IIIU")
    # The top-level emulation is the default of every printer that does not choose its own.
    assert (kitchen.listen, kitchen.emulation, kitchen.maker) == ("tcp:9100", "star", "STAR")
    assert load_settings({"printers": printers}, {}).printer_configs() == (
        load_settings({}, {"PRINTERD_PRINTERS": printers}).printer_configs())


@pytest.mark.parametrize("printers, message", [
    ('{"bar": {"listen": "tcp:9101", "modle": "x"}}', "printers.bar: unknown key 'modle'"),
    ('{"bar": {"emulation": "citizen"}}', "printers.bar.emulation: 'citizen' is not valid"),
    ('{"bar": {"two_byte_encoding": "utf-8"}}', "printers.bar.two_byte_encoding"),
    ('{"bar": {"two_byte_at_start": "maybe"}}', "printers.bar.two_byte_at_start"),
    ('{"bar": 9101}', "printers.bar: must be a listener string or a table"),
    ('{"bad name": "tcp:9101"}', "must be 1-64 letters"),
    ('["tcp:9100"]', "must map printer names"),
])
def test_bad_printer_tables_name_the_printer_and_key(printers, message):
    with pytest.raises(ConfigError) as caught:
        load_settings({"printers": printers}, {})
    assert str(caught.value).startswith("--printers: ")
    assert message in str(caught.value)


def test_unknown_key_in_a_toml_printer_table_names_the_file_printer_and_key(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text('[printers.bar]\nlisten = "tcp:9101"\ncolour = "red"\n')
    with pytest.raises(ConfigError,
                       match=r"p\.toml: printers: printers\.bar: unknown key 'colour'"):
        load_settings({}, {}, str(config))


def test_emulation_setting_is_checked():
    assert load_settings({"emulation": "STAR"}, {}).emulation == "star"
    with pytest.raises(ConfigError, match="^--emulation: 'zebra' is not valid"):
        load_settings({"emulation": "zebra"}, {})


def test_tee_is_a_per_printer_client_endpoint_with_its_fallback(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text('tee_fallback = "offline"\n[printers.kitchen]\nlisten = "tcp:9100"\n'
                      'tee = "tcp:192.168.1.50:9100"\n[printers.bar]\nlisten = "tcp:9101"\n'
                      'tee_fallback = "own"\n')
    kitchen, bar = load_settings({}, {}, str(config)).printer_configs()
    assert (kitchen.tee, kitchen.tee_fallback) == ("tcp:192.168.1.50:9100", "offline")
    assert (bar.tee, bar.tee_fallback) == ("", "own")
    assert load_settings({}, {"PRINTERD_TEE": "tcp:printer.lan:9100"}).tee == \
        "tcp:printer.lan:9100"
    with pytest.raises(ConfigError, match="^--tee: 'tcp:nohost' is not valid: not a client"):
        load_settings({"tee": "tcp:nohost"}, {})
    with pytest.raises(ConfigError, match="printers.bar.tee_fallback: 'silent' is not valid"):
        load_settings({"printers": '{"bar": {"tee_fallback": "silent"}}'}, {})
