"""``python -m proxy`` is the same program as the ``llm-edge-agent`` console script."""

import sys

from proxy.cli import main

sys.exit(main())
