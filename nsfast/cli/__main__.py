import sys

from nsfast.cli import main

sys.exit(main())
