import sys

from rlkit.app.cli import main

sys.exit(main())
