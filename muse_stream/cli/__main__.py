import sys

from muse_stream.cli import main

sys.exit(main())
