"""`python -m autograder release | grade | progress` (see autograder.cli)."""
import sys

from .cli import main

sys.exit(main())
