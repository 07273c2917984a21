import sys

from mlift.cli import main

sys.exit(main())
