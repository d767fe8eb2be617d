"""The locked install: every import declared, the locks current, pinned with hashes, installed."""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "requirements"))
import lockcheck  # noqa: E402

DEV_LOCK = ROOT / "requirements" / "dev.lock"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", re.M)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(section: str, key: str) -> set[str]:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg")
    lines = [line.split("#", 1)[0].strip() for line in config.get(section, key).splitlines()]
    return {normalize(re.split(r"[<>=!~;\[ ]", line)[0]) for line in lines if line}


def imported_modules(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"printerd", "__future__"}


def test_every_package_the_code_imports_is_declared_in_install_requires():
    requires = declared("options", "install_requires")
    providers = packages_distributions()
    undeclared = {module: providers.get(module) for module in imported_modules(ROOT / "src")
                  if not requires & {normalize(d) for d in providers.get(module, [])}}
    assert undeclared == {}


def test_the_locks_were_made_from_the_dependencies_setup_cfg_declares_now():
    digest = lockcheck.dependencies_digest()
    assert lockcheck.check(DEV_LOCK, digest) and lockcheck.check(RUNTIME_LOCK, digest)


def test_a_changed_dependency_makes_the_lock_stale_and_the_check_say_so(tmp_path, capsys):
    setup_cfg = tmp_path / "setup.cfg"
    text = (ROOT / "setup.cfg").read_text()
    setup_cfg.write_text(text.replace("install_requires =\n",
                                      "install_requires =\n    newdependency>=1\n", 1))
    assert lockcheck.dependencies_digest(setup_cfg) != lockcheck.dependencies_digest()
    # A comment changes nothing that gets installed.
    setup_cfg.write_text(text.replace("install_requires =\n",
                                      "install_requires =\n    # a remark\n", 1))
    assert lockcheck.dependencies_digest(setup_cfg) == lockcheck.dependencies_digest()
    stale = tmp_path / "dev.lock"
    stale.write_text(lockcheck.PREFIX + "0" * 64 + "\n")
    assert not lockcheck.check(stale, lockcheck.dependencies_digest())
    assert "run `make lock`" in capsys.readouterr().err


@pytest.mark.parametrize("lock", [DEV_LOCK, RUNTIME_LOCK], ids=["dev", "runtime"])
def test_every_locked_package_is_pinned_with_hashes_and_declared_ones_are_locked(lock):
    text = lock.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned = [entry for entry in entries if PIN.match(entry)]
    assert pinned and all("--hash=sha256:" in entry for entry in pinned)
    locked = {normalize(name) for name, _ in PIN.findall(text)}
    wanted = declared("options", "install_requires")
    if lock == DEV_LOCK:
        wanted |= declared("options.extras_require", "test")
        wanted |= declared("options.extras_require", "lint")
    assert wanted <= locked


def test_the_runtime_lock_has_the_dev_locks_versions():
    dev = dict(PIN.findall(DEV_LOCK.read_text()))
    runtime = dict(PIN.findall(RUNTIME_LOCK.read_text()))
    assert {name: dev.get(name) for name in runtime} == runtime


def test_this_environment_has_exactly_the_locked_versions():
    wrong = {}
    for name, pinned in PIN.findall(DEV_LOCK.read_text()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}
