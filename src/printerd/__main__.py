"""``python -m printerd``: the same as the ``printerd`` command."""

from printerd.cli import main

raise SystemExit(main())
