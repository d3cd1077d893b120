"""``python -m stepwell_api``: the same as ``stepwell-api``."""

import sys

from stepwell_api.main import main

sys.exit(main())
