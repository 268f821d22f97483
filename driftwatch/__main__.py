"""``python -m driftwatch``: the same as the ``driftwatch`` console script."""

from driftwatch.cli import main

raise SystemExit(main())
