import sys

from ltd.cli import main

sys.exit(main())
