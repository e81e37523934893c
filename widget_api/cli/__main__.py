import sys

from widget_api.cli import main

sys.exit(main())
