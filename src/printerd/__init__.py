"""printerd: a network receipt printer stand-in."""

# The one place the version is written: setup.cfg reads it (version = attr: ...).
__version__ = "0.1.0"
