"""
printerd's settings: one table, reachable three ways.

Every setting has a command-line option (``twistd printerd --raw-listen ...``), an environment
variable (``PRINTERD_RAW_LISTEN``, used by ``printerd.tac``) and a key in an optional TOML file
(``raw_listen = "tcp:9100"``).  Precedence, lowest first: built-in default, TOML file,
environment, command line.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from printerd.escpos.codepages import DEFAULT_TWO_BYTE_ENCODING, TWO_BYTE_ENCODINGS
from printerd.forwarder.signing import secret_key

ENV_PREFIX = "PRINTERD_"


class ConfigError(Exception):
    """A setting has a bad value; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def _positive_int(text: Any) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_float(text: Any) -> float:
    value = float(text)
    if not value >= 0:  # also rejects NaN
        raise ValueError("must be a number >= 0")
    return value


def _positive_float(text: Any) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise ValueError("must be a number > 0")
    return value


def _synchronous(text: Any) -> str:
    value = str(text).upper()
    if value not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
    return value


def _database(text: Any) -> str:
    """A SQLite path, or a PostgreSQL URL that libpq can parse (its password never shown)."""
    value = str(text)
    if value.startswith(("postgresql://", "postgres://")):
        from printerd.store.engine import check_url

        try:
            check_url(value)
        except ValueError as e:  # shown as it is: it never repeats the password
            raise SettingProblem(str(e)) from None
    elif not value:
        raise ValueError("must be a file path or a postgresql:// URL")
    return value


def _printer_name(text: Any) -> str:
    value = str(text)
    if not value or len(value) > 64 or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError("must be 1-64 letters, digits, '-', '_' or '.'")
    return value


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook the forwarder posts every receipt to (optionally only some printers')."""

    name: str
    url: str
    secret: str
    printers: tuple[str, ...] = ()
    include_raw: bool = False
    token: str = ""  # sent as "Authorization: Bearer <token>" (a central printerd's API token)

    def wants(self, printer: str) -> bool:
        return not self.printers or printer in self.printers


def _url_tables(value: Any, label: str, keys: tuple[str, ...],
                required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any], str]]:
    """
    Each table (number from 1, table, its http(s) ``url``) of a list of tables (TOML) or the
    same as a JSON string (option, environment), checked as it comes: its keys, its url.
    """
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    if not isinstance(value, list):
        raise ValueError("must be a list of {" + ", ".join(keys) + "}")
    for number, item in enumerate(value, 1):
        if not isinstance(item, dict) or not set(required) <= set(item):
            raise ValueError(f"{label} {number} needs at least {' and '.join(required)}")
        unknown = set(item) - set(keys)
        if unknown:
            raise ValueError(f"{label} {number}: unknown keys {sorted(unknown)}")
        url = str(item["url"])
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{label} {number}: url must be http:// or https://")
        yield number, item, url


def _webhooks(value: Any) -> tuple[WebhookTarget, ...]:
    """A list of tables (TOML) or the same as a JSON string (option, environment)."""
    targets = []
    for number, item, url in _url_tables(
            value, "webhook", ("name", "url", "secret", "printers", "include_raw", "token"),
            ("url", "secret")):
        name = _printer_name(item.get("name", f"webhook{number}"))
        try:
            secret_key(str(item["secret"]))
        except ValueError as e:
            raise ValueError(f"webhook {name!r}: {e}") from None
        targets.append(WebhookTarget(
            name=name, url=url,
            secret=str(item["secret"]), printers=tuple(item.get("printers", ())),
            include_raw=bool(item.get("include_raw", False)), token=str(item.get("token", ""))))
    if len({t.name for t in targets}) != len(targets):
        raise ValueError("webhook names must be unique")
    return tuple(targets)


def _string_list(value: Any) -> tuple[str, ...]:
    """A TOML list, or a comma-separated string (option, environment)."""
    if isinstance(value, str):
        value = [item for item in value.split(",")]
    if not isinstance(value, (list, tuple)):
        raise ValueError("must be a list or a comma-separated string")
    return tuple(str(item).strip() for item in value if str(item).strip())


def _secrets(value: Any) -> tuple[str, ...]:
    secrets = _string_list(value)
    for number, secret in enumerate(secrets, 1):
        try:
            secret_key(secret)
        except ValueError as e:
            raise ValueError(f"secret {number}: {e}") from None
    return secrets


def _networks(value: Any) -> tuple[str, ...]:
    networks = _string_list(value)
    for network in networks:
        ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
    return networks


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _non_negative_int(text: Any) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _two_byte_encoding(value: Any) -> str:
    text = str(value).lower().replace("-", "_")
    if text not in TWO_BYTE_ENCODINGS:
        raise ValueError(f"must be one of {', '.join(TWO_BYTE_ENCODINGS)}")
    return text


def _origins(value: Any) -> tuple[str, ...]:
    """Web origins as a browser sends them (scheme://host[:port]), or * for any."""
    origins = _string_list(value)
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if origin != "*" and (scheme not in ("http", "https") or not rest or "/" in rest
                              or rest != rest.strip()):
            raise ValueError(f"{origin!r} is not an origin like https://dash.example.com:8443")
    return origins


def _log_format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("text", "json"):
        raise ValueError("must be text or json")
    return text


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    """A parser for one of ``choices`` (lower case), ignoring case and surrounding space."""
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return text
    return parse


EMULATIONS = ("epson", "star")
_emulation = _one_of(EMULATIONS)


def _client_endpoint(value: Any) -> str:
    """A Twisted client endpoint string (``tcp:192.168.1.50:9100``), or empty: none."""
    text = str(value).strip()
    if text:
        from twisted.internet.endpoints import clientFromString

        try:
            # Parsed only to check it: makeService builds it again on its reactor.
            clientFromString(None, text)
        except Exception as e:  # clientFromString raises many kinds for bad strings
            raise ValueError(f"not a client endpoint such as tcp:192.168.1.50:9100 ({e})") \
                from None
    return text


def _http_url(value: Any) -> str:
    """An http:// or https:// URL, or empty: none."""
    text = str(value).strip()
    if text and not text.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return text


def _mac(value: Any) -> str:
    """A MAC address as six hex pairs (any of : - . separators), or empty: derived."""
    text = str(value).strip().lower()
    digits = "".join(c for c in text if c not in ":-.")
    if text and (len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits)):
        raise ValueError("must be a MAC address such as 00:11:62:0a:0b:0c")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2)) if text else ""


TEE_FALLBACKS = ("own", "offline")
_tee_fallback = _one_of(TEE_FALLBACKS)


class SettingProblem(ValueError):
    """A bad value whose message already says where and what: shown without the value."""


def _per_printer(setting: str, default: Any = dataclasses.MISSING) -> Any:
    # A default (the top-level setting's) lets code that builds a PrinterConfig by hand leave
    # out the keys it does not use.
    return field(default=default, metadata={"setting": setting})


@dataclass(frozen=True)
class PrinterConfig:
    """
    One emulated printer, as the rest of printerd sees it (one printer on ``raw_listen``, or
    each entry of ``printers``).  Each key below names the top-level setting that checks its
    value and gives its default: adding a per-printer key is one line here.
    """

    name: str
    listen: str = _per_printer("raw_listen")
    emulation: str = _per_printer("emulation")
    maker: str = _per_printer("printer_maker")
    model: str = _per_printer("printer_model")
    serial: str = _per_printer("printer_serial")
    two_byte_encoding: str = _per_printer("two_byte_encoding")
    two_byte_at_start: bool = _per_printer("two_byte_at_start", False)
    tee: str = _per_printer("tee", "")
    tee_fallback: str = _per_printer("tee_fallback", "own")
    cloudprnt: str = _per_printer("cloudprnt", "")
    cloudprnt_interval: float = _per_printer("cloudprnt_interval", 5.0)
    cloudprnt_mac: str = _per_printer("cloudprnt_mac", "")


def printer_keys() -> dict[str, str]:
    """Per-printer key -> the top-level setting behind it."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(PrinterConfig)
            if "setting" in f.metadata}


# What a printer reports when maker and model are left empty: its emulation's own.
EMULATION_IDENTITIES = {
    "epson": {"maker": "EPSON", "model": "TM-T88V"},
    "star": {"maker": "STAR", "model": "TSP143IIIU"},
}


def _printers(value: Any) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """
    A table name -> listener string or table of per-printer keys (TOML), or the same as a
    JSON object (option, environment). Keeps only the keys given, checked; the rest come
    from the top-level settings (``Settings.printer_configs``).
    """
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise ValueError('must map printer names to listeners or tables, e.g. {"kitchen": '
                         '"tcp:9100", "bar": {"listen": "tcp:9101", "emulation": "star"}}')
    keys = printer_keys()
    printers = []
    for name, table in value.items():
        name = _printer_name(name)
        if isinstance(table, str):
            table = {"listen": table}
        if not isinstance(table, dict):
            raise SettingProblem(f"printers.{name}: must be a listener string or a table of "
                                 + ", ".join(keys))
        given = []
        for key, item in table.items():
            if key not in keys:
                raise SettingProblem(f"printers.{name}: unknown key {key!r} (known: "
                                     + ", ".join(keys) + ")")
            try:
                given.append((key, Settings.__dataclass_fields__[keys[key]].metadata["parse"](
                    item)))
            except (TypeError, ValueError) as e:
                raise SettingProblem(f"printers.{name}.{key}: {item!r} is not valid: {e}") \
                    from None
        printers.append((name, tuple(given)))
    return tuple(printers)


def _server_direct_print(value: Any) -> tuple:
    """A list of tables (TOML) or the same as a JSON string: the servers printers poll."""
    from printerd.epos.sdp import ServerDirectPrintConfig

    entries = []
    for _, item, url in _url_tables(value, "entry", ("printer", "url", "interval", "id", "name"),
                                    ("printer", "url")):
        entries.append(ServerDirectPrintConfig(
            printer=_printer_name(item["printer"]), url=url,
            interval=_positive_float(item.get("interval", 5)),
            id=str(item.get("id", "")), name=str(item.get("name", ""))))
    return tuple(entries)


def _setting(default: Any, parse: Callable[[Any], Any], doc: str) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """All of printerd's settings with their defaults."""

    raw_listen: str = _setting("tcp:9100", str, "raw printing listener (Twisted endpoint string)")
    http_listen: str = _setting(
        "tcp:8000:interface=127.0.0.1", str, "HTTP API listener (Twisted endpoint string)"
    )
    database: str = _setting(
        "var/printerd.sqlite3", _database, "SQLite database file (its folder is created), or a "
        "PostgreSQL URL shared by several instances: postgresql://user:password@host/db, "
        "postgresql://user@/db?host=/socket/folder"
    )
    instance_name: str = _setting(
        "", str, "this instance's name in logs, webhook leases and metrics (default: the host "
        "name)")
    site: str = _setting(
        "", str, "the site's name, put into every receipt and webhook payload (a central "
        "printerd tells sites apart by it)")
    printer_name: str = _setting("default", _printer_name, "name recorded on every receipt")
    emulation: str = _setting(
        "epson", _emulation, "command set and status replies: epson (ESC/POS) or star (Star "
        "Line mode and StarPRNT)")
    printer_maker: str = _setting(
        "", str, "maker the printer reports (default: EPSON, or STAR for star emulation)")
    printer_model: str = _setting(
        "", str, "model the printer reports (default: TM-T88V, or TSP143IIIU for star emulation)")
    printer_serial: str = _setting("PRINTERD0001", str, "serial number the printer reports")
    printers: tuple = _setting(
        (), _printers, "several printers: JSON object name -> raw listener, or name -> {listen, "
        "emulation, maker, model, serial, two_byte_encoding, two_byte_at_start, tee, "
        "tee_fallback, cloudprnt, cloudprnt_interval, cloudprnt_mac} (default: one, "
        "printer_name on raw_listen)")
    two_byte_encoding: str = _setting(
        DEFAULT_TWO_BYTE_ENCODING, _two_byte_encoding,
        f"encoding of FS & two-byte mode ({', '.join(TWO_BYTE_ENCODINGS)}); shift_jis: a "
        "Japanese model, which takes FS C (Epson) and ESC p / ESC q (Star)")
    two_byte_at_start: bool = _setting(
        False, _boolean, "the printer is in two-byte mode at power-on and after ESC @, as "
        "printers with Chinese firmware are: bytes >= 0x80 read in two_byte_encoding until FS .")
    max_connections: int = _setting(
        50, _positive_int, "raw jobs in flight; further connections wait in the backlog"
    )
    idle_timeout: float = _setting(
        30.0, _positive_float, "seconds without bytes before a raw job is ended"
    )
    max_job_bytes: int = _setting(
        64 * 1024 * 1024, _positive_int, "bytes per raw job; the rest is cut off (truncated)"
    )
    recent_size: int = _setting(500, _positive_int, "receipts kept in memory for /api/recent")
    synchronous: str = _setting("FULL", _synchronous, "SQLite PRAGMA synchronous")
    commit_delay: float = _setting(
        0.002, _non_negative_float, "seconds a receipt may wait to share a commit"
    )
    shutdown_timeout: float = _setting(
        10.0, _non_negative_float, "seconds jobs in flight get to finish on stop"
    )
    db_readers: int = _setting(2, _positive_int, "SQLite reader threads (fixed)")
    sse_keepalive: float = _setting(
        15.0, _positive_float, "seconds between keepalive comments on /api/stream")
    sse_max_duration: float = _setting(
        300.0, _positive_float, "seconds before a stream is ended (the client resumes)")
    sse_max_buffer: int = _setting(
        1024 * 1024, _positive_int, "unsent bytes a stream subscriber may lag before it is dropped")
    sse_max_subscribers: int = _setting(
        10_000, _positive_int, "open streams; more get 503 with Retry-After")
    sse_max_per_client: int = _setting(
        2_000, _positive_int, "open streams per client address; more get 503 with Retry-After")
    webhooks: tuple = _setting(
        (), _webhooks, "webhook targets: JSON list of {name, url, secret, printers, include_raw, "
        "token}")
    webhook_timeout: float = _setting(15.0, _positive_float, "seconds per webhook POST")
    webhook_concurrency: int = _setting(4, _positive_int, "webhook POSTs in flight per target")
    ingest_secrets: tuple = _setting(
        (), _secrets, "whsec_ secrets (comma-separated) whose signatures POST /api/ingest "
        "accepts: receipts forwarded by site printerds (none: ingest is off)")
    ingest_max_bytes: int = _setting(
        16 * 1024 * 1024, _positive_int, "request body bytes POST /api/ingest takes from a "
        "client with an API token (a forwarded receipt with its raw bytes)")
    retention_days: float = _setting(30.0, _positive_float, "days receipts are kept")
    retention_interval: float = _setting(3600.0, _positive_float, "seconds between purges")
    api_tokens: tuple = _setting(
        (), _string_list, "API tokens (comma-separated); any set means /api/* needs one")
    api_tokens_file: str = _setting("", str, "file of API tokens, one per line")
    insecure: bool = _setting(
        False, _boolean, "allow HTTP on a non-loopback interface without tokens")
    raw_allow: tuple = _setting(
        ("0.0.0.0/0", "::/0"), _networks, "networks (CIDR, comma-separated) allowed to print")
    api_rate: float = _setting(
        50.0, _non_negative_float, "API requests per second per client (0: no limit)")
    api_burst: int = _setting(200, _positive_int, "API requests a client may burst")
    http_timeout: float = _setting(
        30.0, _positive_float, "seconds an HTTP connection may stay silent")
    http_request_timeout: float = _setting(
        10.0, _positive_float, "seconds an HTTP request (line, headers, body) may take to arrive "
        "from its first byte; then 408")
    http_max_connections: int = _setting(
        0, _non_negative_int, "HTTP connections at once (0: the HTTP share of the descriptor "
        "limit); at the cap a new one replaces the one idle longest")
    http_allowed_hosts: tuple = _setting(
        (), _string_list, "Host names the API answers to besides loopback and its own address "
        "(comma-separated; * for any); others get 421")
    trusted_proxies: tuple = _setting(
        (), _networks, "reverse proxies (CIDR, comma-separated) whose X-Forwarded-For, "
        "Forwarded or CF-Connecting-IP name the client")
    raw_max_per_peer: int = _setting(
        0, _non_negative_int, "raw jobs in flight per peer address (0: no cap)")
    raw_wait_timeout: float = _setting(
        60.0, _positive_float, "seconds a raw connection may wait for a slot before it is closed")
    cors_origins: tuple = _setting(
        (), _origins, "web origins (comma-separated, or *) whose pages may use the API and "
        "the stream (CORS); tokens are still required")
    log_format: str = _setting(
        "text", _log_format, "log lines: text, or json (one JSON object per line on stdout)")
    tee: str = _setting(
        "", _client_endpoint, "a real printer every raw job is also sent to as it arrives "
        "(client endpoint string, e.g. tcp:192.168.1.50:9100; empty: none)")
    tee_fallback: str = _setting(
        "own", _tee_fallback, "status replies while the tee's printer is unreachable: own "
        "(printerd's state) or offline")
    cloudprnt: str = _setting(
        "", _http_url, "Star CloudPRNT: the server URL the printer polls for jobs (needs "
        "emulation = star; empty: none)")
    cloudprnt_interval: float = _setting(
        5.0, _positive_float, "seconds between CloudPRNT polls")
    cloudprnt_mac: str = _setting(
        "", _mac, "the MAC address the printer reports to its CloudPRNT server (default: one "
        "derived from the printer's name and serial)")
    mdns: bool = _setting(
        False, _boolean, "advertise each raw printer on the LAN with mDNS/DNS-SD (Bonjour) "
        "through the system's Avahi (avahi-publish)")
    mdns_command: str = _setting(
        "avahi-publish", str, "Avahi's publishing command (a name on PATH, or a path)")
    tee_timeout: float = _setting(
        3.0, _positive_float, "seconds to connect to the tee's printer before a job goes on "
        "without it")
    epos: bool = _setting(
        True, _boolean, "answer Epson ePOS-Print (POST /cgi-bin/epos/service.cgi) over HTTP")
    epos_listen: str = _setting(
        "", str, "a listener of ePOS-Print's own, e.g. tcp:8008 or ssl:8043:... (empty: none)")
    epos_max_body: int = _setting(
        2 * 1024 * 1024, _positive_int, "bytes an ePOS-Print request may carry")
    ocr: bool = _setting(
        False, _boolean, "read the text of image-only receipts with Tesseract (ocr_text)")
    ocr_command: str = _setting("tesseract", str, "the tesseract program (a name on PATH, or a path)")
    ocr_languages: str = _setting("eng", str, "Tesseract languages, e.g. eng or eng+fra")
    ocr_queue: int = _setting(100, _positive_int, "receipts waiting for OCR; more are skipped")
    ocr_timeout: float = _setting(60.0, _positive_float, "seconds one OCR run may take")
    server_direct_print: tuple = _setting(
        (), _server_direct_print, "Epson Server Direct Print: JSON list of {printer, url, "
        "interval, id, name}; each printer polls its URL for ePOS-Print jobs")

    def printer_configs(self) -> tuple[PrinterConfig, ...]:
        """Every printer to emulate, per-printer keys over the top-level settings."""
        defaults = {key: getattr(self, setting) for key, setting in printer_keys().items()}
        tables = self.printers or ((self.printer_name, ()),)
        configs = []
        for name, given in tables:
            values = {**defaults, **dict(given)}
            for key, default in EMULATION_IDENTITIES[values["emulation"]].items():
                values[key] = values[key] or default
            configs.append(PrinterConfig(name=name, **values))
        return tuple(configs)


DEFAULTS = Settings()  # every default, for constructors that default to the same


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def option_name(name: str) -> str:
    return name.replace("_", "-")


def setting_fields() -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(Settings)


# Settings holding secrets: an error about them never repeats the value.
_SECRET_SETTINGS = {"webhooks", "api_tokens", "ingest_secrets"}


def _parse(name: str, value: Any, source: str) -> Any:
    spec = Settings.__dataclass_fields__[name]
    try:
        return spec.metadata["parse"](value)
    except SettingProblem as e:
        raise ConfigError(source, str(e)) from None
    except (TypeError, ValueError) as e:
        shown = "the value" if name in _SECRET_SETTINGS else repr(value)
        raise ConfigError(source, f"{shown} is not valid: {e}") from None


def read_toml(path: str) -> dict[str, Any]:
    """The settings in a TOML file, by setting name; unknown keys are an error."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError("--config", f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("--config", f"{path} is not valid TOML: {e}") from None
    known = set(Settings.__dataclass_fields__)
    for key in data:
        if key not in known:
            raise ConfigError(f"{path}: {key}", "unknown setting")
    return data


DEFAULT_CONFIG = "/etc/printerd/printerd.toml"  # read when it exists and no other file is named


def load_settings_with_sources(
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
    default_config: str | None = None,
) -> tuple[Settings, dict[str, str]]:
    """
    Merge defaults, the TOML file, ``PRINTERD_*`` variables and command-line options; also say
    where each setting came from ("default", "file PATH", "env NAME", "option --name").

    ``options`` maps setting names to values given on the command line (None = not given).
    The TOML file is ``config_path``, else ``$PRINTERD_CONFIG`` if set (empty: no file at
    all), else ``default_config`` if that file exists.
    """
    options = options or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = {name: "default" for name in Settings.__dataclass_fields__}
    if not config_path:
        config_path = environ.get(ENV_PREFIX + "CONFIG")
        if config_path is None and default_config and os.path.isfile(default_config):
            config_path = default_config
    if config_path:
        for name, value in read_toml(config_path).items():
            values[name] = _parse(name, value, f"{config_path}: {name}")
            sources[name] = f"file {config_path}"
    for name in Settings.__dataclass_fields__:
        if env_name(name) in environ:
            values[name] = _parse(name, environ[env_name(name)], env_name(name))
            sources[name] = f"env {env_name(name)}"
    for name, value in options.items():
        if value is not None:
            values[name] = _parse(name, value, "--" + option_name(name))
            sources[name] = f"option --{option_name(name)}"
    return Settings(**values), sources


def load_settings(
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
    default_config: str | None = None,
) -> Settings:
    """The merged settings; see ``load_settings_with_sources``."""
    return load_settings_with_sources(options, environ, config_path, default_config)[0]


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """
    ``PRINTERD_*`` variables that name no setting, each with the setting it most likely
    meant to name: a misspelled variable would otherwise be silently ignored.
    """
    known = {env_name(name) for name in Settings.__dataclass_fields__} | {ENV_PREFIX + "CONFIG"}
    found = []
    for variable in sorted(environ):
        if variable.startswith(ENV_PREFIX) and variable not in known:
            close = difflib.get_close_matches(variable, known, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.append(f"{variable} is not a printerd setting{hint}; it is ignored")
    return found


def format_value(name: str, value: Any) -> str:
    """A setting's value as one would type it in a TOML file; secrets are not shown."""
    if name == "api_tokens":
        return f"[]  # {len(value)} token(s), not shown" if value else "[]"
    if name == "ingest_secrets":
        return f"[]  # {len(value)} secret(s), not shown" if value else "[]"
    if name == "database" and str(value).startswith(("postgresql://", "postgres://")):
        from printerd.store.engine import redact

        return _toml(redact(value))
    if name == "webhooks":
        hooks = [{"name": t.name, "url": t.url, "secret": "(not shown)",
                  "printers": list(t.printers), "include_raw": t.include_raw,
                  **({"token": "(not shown)"} if t.token else {})} for t in value]
        return "[" + ", ".join(_inline_table(hook) for hook in hooks) + "]"
    if name == "printers":  # ((name, ((key, value), ...)), ...)
        return _inline_table({printer: dict(keys) for printer, keys in value}) if value else "{}"
    return _toml(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) + ".0"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return _inline_table(value)
    return json.dumps(str(value), ensure_ascii=False)


def _inline_table(table: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{key} = {_toml(value)}" for key, value in table.items()) + "}"


def help_default(value: Any) -> str:
    """A default as typed on the command line or in a variable (not a Python repr)."""
    if isinstance(value, bool):
        return "false" if not value else "true"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    if value == "":
        return "none"
    return str(value)


def describe(name: str) -> str:
    return Settings.__dataclass_fields__[name].metadata["doc"]
