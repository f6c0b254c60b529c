"""``python -m bpttlab.grading grade|release ...``: the grading commands without the ``bpttlab`` CLI."""
import sys

from .commands import main

sys.exit(main())
