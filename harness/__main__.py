"""``python -m harness`` is ``chat-harness``."""

import sys

from harness.cli import main

sys.exit(main())
