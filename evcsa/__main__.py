"""``python -m evcsa``: the ``evcsa`` command (:func:`evcsa.cli.main`)."""

import sys

from evcsa.cli import main

sys.exit(main())
