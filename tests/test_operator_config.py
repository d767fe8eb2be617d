"""Config as operators expect: flags, misspelled variables, a default file, --print-config, --help."""

from __future__ import annotations

import os
import subprocess

import pytest

from bench.daemon import PRINTERD, Daemon
from printerd.config import load_settings_with_sources, unknown_variables
from printerd.tap import Options


def parsed(*arguments: str, default_config: str | None = None) -> Options:
    options = Options(default_config=default_config)
    options.parseOptions(list(arguments))
    return options


def test_insecure_is_a_flag_and_does_not_swallow_the_next_option():
    options = parsed("--insecure", "--api-rate=5")
    assert options.settings.insecure is True and options.settings.api_rate == 5.0
    assert parsed("--api-rate=5").settings.insecure is False


def test_a_setting_that_is_on_by_default_has_a_no_flag():
    assert parsed().settings.epos is True
    assert parsed("--no-epos").settings.epos is False


def test_insecure_still_comes_from_its_variable(tmp_path):
    settings, sources = load_settings_with_sources({}, {"PRINTERD_INSECURE": "true"})
    assert settings.insecure is True and sources["insecure"] == "env PRINTERD_INSECURE"


def test_a_misspelled_variable_is_reported_with_the_setting_it_meant():
    warnings = unknown_variables({"PRINTERD_DATABSE": "x", "PRINTERD_DATABASE": "y",
                                  "PRINTERD_CONFIG": "", "PRINTERD_QQQQQQQQQQQQ": "1",
                                  "HOME": "/root"})
    assert warnings == [
        "PRINTERD_DATABSE is not a printerd setting (did you mean PRINTERD_DATABASE?); "
        "it is ignored",
        "PRINTERD_QQQQQQQQQQQQ is not a printerd setting; it is ignored",
    ]


def test_the_default_config_file_is_read_when_it_exists_and_no_other_is_named(tmp_path):
    default = tmp_path / "printerd.toml"
    other = tmp_path / "other.toml"
    other.write_text("api_burst = 9\n")
    settings, sources = load_settings_with_sources({}, {}, None, str(default))
    assert sources["api_rate"] == "default"  # the default file does not exist
    default.write_text("api_rate = 7\n")
    settings, sources = load_settings_with_sources({}, {}, None, str(default))
    assert settings.api_rate == 7.0 and sources["api_rate"] == f"file {default}"
    # A file named by --config or PRINTERD_CONFIG replaces it; an empty PRINTERD_CONFIG: none.
    settings, sources = load_settings_with_sources({}, {}, str(other), str(default))
    assert (settings.api_rate, settings.api_burst) == (50.0, 9)
    settings, _ = load_settings_with_sources({}, {"PRINTERD_CONFIG": str(other)}, None,
                                             str(default))
    assert (settings.api_rate, settings.api_burst) == (50.0, 9)
    settings, _ = load_settings_with_sources({}, {"PRINTERD_CONFIG": ""}, None, str(default))
    assert (settings.api_rate, settings.api_burst) == (50.0, 200)
    # Options reads the path it is given, never the real /etc in a test.
    assert parsed(default_config=str(default)).settings.api_rate == 7.0


def environment_without_printerd_settings() -> dict[str, str]:
    """The test process's environment minus PRINTERD_*: CI sets its own
    PRINTERD_REQUIRE_* switches there, which the daemon would report."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith("PRINTERD_")}


def test_print_config_shows_every_setting_with_its_source_and_hides_secrets(tmp_path):
    config = tmp_path / "printerd.toml"
    config.write_text('retention_days = 7\napi_tokens = ["file-token"]\n')
    hooks = '[{"name": "cloud", "url": "https://r.test/", "secret": "whsec_c2VjcmV0LWtleQ=="}]'
    result = subprocess.run(
        [PRINTERD, "run", "--print-config", f"--config={config}", "--api-rate=9",
         f"--webhooks={hooks}"], capture_output=True, text=True, timeout=60,
        env={**environment_without_printerd_settings(),
             "PRINTERD_API_BURST": "300", "PRINTERD_RETENTION_DAYZ": "1"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("# PRINTERD_RETENTION_DAYZ is not a printerd setting (did you mean "
                        "PRINTERD_RETENTION_DAYS?); it is ignored")
    assert f"retention_days = 7.0  # file {config}" in lines
    assert "api_rate = 9.0  # option --api-rate" in lines
    assert "api_burst = 300  # env PRINTERD_API_BURST" in lines
    assert 'raw_allow = ["0.0.0.0/0", "::/0"]  # default' in lines
    assert "insecure = false  # default" in lines
    from printerd.config import setting_fields

    names = [line.split(" = ")[0] for line in lines if not line.startswith("#")]
    assert names == [f.name for f in setting_fields()]
    assert "file-token" not in result.stdout and "c2VjcmV0" not in result.stdout
    assert f"api_tokens = []  # 1 token(s), not shown  # file {config}" in lines


def test_help_shows_defaults_as_they_are_typed():
    result = subprocess.run([PRINTERD, "run", "--help"], capture_output=True, text=True,
                            timeout=60)
    text = " ".join(result.stdout.split())  # the help wraps lines
    assert "[default: 0.0.0.0/0,::/0]" in text and "[default: 30]" in text
    assert "[default: none]" in text
    for python_repr in ("('", "[default: ()]", "[default: False]", "[default: 30.0]"):
        assert python_repr not in text


@pytest.mark.e2e
def test_the_daemon_logs_a_misspelled_variable(tmp_path):
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", cli=True,
                    env={"PRINTERD_IDLE_TIMOUT": "5"})
    try:
        assert daemon.get("/livez")[0] == 200
        assert "(did you mean PRINTERD_IDLE_TIMEOUT?)" in daemon.log()
    finally:
        daemon.stop()
