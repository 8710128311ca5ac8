import sys

from securenfs.cli import main

sys.exit(main())
