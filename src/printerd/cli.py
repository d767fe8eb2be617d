"""
The ``printerd`` command (also ``python -m printerd``).

``printerd run [options]`` is the daemon: twistd's own machinery (signals, logging, privileges)
running printerd's ``Options``/``makeService`` in the foreground, with the same options as
``twistd printerd``. ``printerd render`` draws a saved job offline; ``printerd version`` prints
the version.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from printerd import __version__
from printerd.config import EMULATIONS
from printerd.escpos.codepages import DEFAULT_TWO_BYTE_ENCODING

if TYPE_CHECKING:
    import argparse

RUN_HELP = "run the daemon in the foreground (options: printerd run --help)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # ``run`` hands every further argument to the daemon's own option parser, untouched.
    if args[:1] == ["run"]:
        return run_daemon(args[1:])
    parser = _parser()
    options = parser.parse_args(args)
    if options.version or options.command == "version":
        print(f"printerd {__version__}")
        return 0
    if options.command == "render":
        return render_command(options, options.render_parser)
    if options.command == "webhook-secret":
        from printerd.forwarder.signing import new_secret

        print(new_secret())
        return 0
    if options.command == "copy-db":
        return copy_db(options.source, options.destination)
    if options.command == "healthcheck":
        return healthcheck(options.url, options.timeout, "/readyz" if options.ready else "/livez")
    parser.print_help(sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    # Imported here, as the renderers are: ``printerd run`` never parses with it, and the
    # daemon it runs would keep it in memory.
    import argparse

    from printerd.render.service import FORMATS

    parser = argparse.ArgumentParser(
        prog="printerd", description="A network receipt printer stand-in.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help=RUN_HELP)
    render = commands.add_parser(
        "render", help="draw a saved ESC/POS job (e.g. captured from a POS) offline",
        description="Render one receipt of a saved ESC/POS job, as the HTTP API's renderings do.")
    render.add_argument("file", metavar="FILE", help="the job's raw bytes ('-': standard input)")
    render.add_argument("--format", required=True, choices=sorted(FORMATS))
    render.add_argument("--width", type=int, default=None,
                        help="columns (txt, html) or dots (png, pdf); default: as the API's")
    render.add_argument("--receipt", type=int, default=1, metavar="N",
                        help="which receipt of the job, counted from 1 at its cuts (default 1)")
    render.add_argument("--two-byte-encoding", default=DEFAULT_TWO_BYTE_ENCODING,
                        help="encoding of FS & two-byte mode "
                             f"(default {DEFAULT_TWO_BYTE_ENCODING})")
    render.add_argument("--two-byte-at-start", action="store_true",
                        help="the printer starts in two-byte mode, as printers with Chinese "
                             "firmware do (the two_byte_at_start setting)")
    render.add_argument("--model", default=None,
                        help="the printer model whose paper it is drawn on (default TM-T88V: "
                             "512 dots, 42 columns)")
    render.add_argument("--emulation", default="epson", choices=EMULATIONS,
                        help="the printer's command set (default epson: ESC/POS)")
    render.add_argument("-o", "--output", default="-", metavar="OUT",
                        help="file to write ('-', the default: standard output)")
    render.set_defaults(render_parser=render)  # its own usage line in error messages
    commands.add_parser("version", help="print the version")
    commands.add_parser("webhook-secret", help="print a new random webhook secret (whsec_...)")
    copy = commands.add_parser(
        "copy-db", help="copy a SQLite database into PostgreSQL, keeping ids",
        description="Copy every receipt and webhook delivery of a SQLite database into a "
                    "PostgreSQL database that holds no receipts yet, keeping their ids (stream "
                    "clients resume from the Last-Event-ID they have). Stop printerd first.")
    copy.add_argument("source", metavar="SOURCE", help="the SQLite database file")
    copy.add_argument("destination", metavar="DEST",
                      help="the PostgreSQL URL (postgresql://user:password@host/database)")
    check = commands.add_parser(
        "healthcheck", help="probe the running daemon: /livez, or /readyz (exit 0: it passed)",
        description="GET /livez (or /readyz with --ready) of the daemon configured by the same "
                    "settings (PRINTERD_* variables, PRINTERD_CONFIG): the container's "
                    "HEALTHCHECK. /livez fails only when the daemon does not answer.")
    check.add_argument("--ready", action="store_true",
                       help="ask /readyz: can it take and store jobs now")
    check.add_argument("--url", default=None,
                       help="the probe's full URL (default: from http_listen, on 127.0.0.1)")
    check.add_argument("--timeout", type=float, default=4.0, help="seconds (default 4)")
    return parser


def render_command(options: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from printerd.escpos.profiles import DEFAULT_MODEL, profile_for
    from printerd.render.document import ReceiptPrinter, parse_job
    from printerd.render.service import FORMATS

    render, sizes, own_size, _ = FORMATS[options.format]
    profile = profile_for(options.model or DEFAULT_MODEL, options.two_byte_at_start)
    width = own_size(profile) if options.width is None else options.width
    if width not in sizes:
        parser.error(f"--width {width}: {options.format} is drawn at "
                     f"{', '.join(map(str, sizes))}")
    try:
        if options.file == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(options.file, "rb") as f:
                raw = f.read()
    except OSError as e:
        return _error(f"cannot read {options.file}: {e.strerror}")
    printer = ReceiptPrinter(options.emulation, options.two_byte_encoding, profile)
    try:
        # The job splits at its cuts as the raw port splits it; each part is rendered on its own.
        receipts = [receipt.raw for receipt in parse_job(raw, printer, keep_bitmaps=False)]
    except LookupError:
        parser.error(f"--two-byte-encoding: unknown encoding {options.two_byte_encoding!r}")
    if not 1 <= options.receipt <= len(receipts):
        return _error(f"{options.file} holds {len(receipts)} receipt(s); "
                      f"--receipt {options.receipt} is not one of them")
    if len(receipts) > 1:
        print(f"printerd: {options.file} holds {len(receipts)} receipts; rendering number "
              f"{options.receipt} (--receipt N picks another)", file=sys.stderr)
    body = render(receipts[options.receipt - 1], width, printer)
    if options.output == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    else:
        try:
            with open(options.output, "wb") as f:
                f.write(body)
        except OSError as e:
            return _error(f"cannot write {options.output}: {e.strerror}")
    return 0


def http_base_url(http_listen: str) -> str:
    """Where this machine reaches the HTTP listener ``http_listen`` (a tcp endpoint string)."""
    # Endpoint strings escape the colons inside a value (an IPv6 address) with a backslash.
    kind, port, *parameters = [part.replace("\\:", ":")
                               for part in re.split(r"(?<!\\):", http_listen)] + [""]
    if kind not in ("tcp", "tcp6") or not port.isdigit():
        raise ValueError(f"http_listen {http_listen!r} is not a tcp port: pass --url")
    host = "[::1]" if kind == "tcp6" else "127.0.0.1"
    for parameter in filter(None, parameters):
        name, _, value = parameter.partition("=")
        if name == "interface" and value not in ("", "0.0.0.0", "::"):
            host = f"[{value}]" if ":" in value else value
    return f"http://{host}:{port}"


def healthcheck(url: Optional[str], timeout: float, path: str) -> int:
    import os
    import urllib.error
    import urllib.request

    from printerd.config import ConfigError, load_settings

    if url is None:
        try:
            url = http_base_url(load_settings({}, os.environ).http_listen) + path
        except (ConfigError, ValueError) as e:
            return _error(str(e))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            print(f"{url}: {response.status} {response.read().decode(errors='replace')}")
            return 0
    except urllib.error.HTTPError as e:
        print(f"{url}: {e.code} {e.read().decode(errors='replace')}")
    except OSError as e:
        print(f"{url}: {e}")
    return 1


def copy_db(source: str, destination: str) -> int:
    from printerd.store.copy import CopyRefused, copy_database

    try:
        copied = copy_database(source, destination)
    except CopyRefused as e:
        return _error(f"copy-db: {e}")
    print(f"copied {copied.receipts} receipts and {copied.deliveries} webhook deliveries from "
          f"{source} to {copied.destination}, ids kept; the next receipt is {copied.next_id}")
    return 0


def _error(message: str) -> int:
    print(f"printerd: error: {message}", file=sys.stderr)
    return 1


def run_daemon(arguments: list[str]) -> int:
    """twistd in the foreground, without a pid file, with printerd as its only plugin."""
    from twisted.application.service import ServiceMaker
    from twisted.python import usage
    from twisted.scripts.twistd import ServerOptions, runApp

    from twisted.plugins.printerd_plugin import printerd as plugin

    # The twistd plugin under the name "run", so twistd's messages read "printerd run".
    service_maker = ServiceMaker(plugin.name, plugin.module, plugin.description, "run")

    class PrinterdServerOptions(ServerOptions):
        # twistd's plugin search, narrowed to printerd's own plugin.
        @staticmethod
        def _getPlugins(interface, package=None):
            return [service_maker]

        def getSynopsis(self) -> str:
            return "Usage: printerd"

    config = PrinterdServerOptions()
    try:
        config.parseOptions(["--nodaemon", "--pidfile=", "run", *arguments])
    except usage.error as e:
        print(f"printerd: error: {e}", file=sys.stderr)
        return 2
    runApp(config)
    return 0
