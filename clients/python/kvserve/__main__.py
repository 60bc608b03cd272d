"""`python3 -m kvserve ...`: the kvserve-client command line (kvserve/cli.py)."""
import sys

from kvserve.cli import main

sys.exit(main())
