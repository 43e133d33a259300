"""`python -m proxy` is the `ollama-gateway` command."""

import sys

from proxy.cli.main import main

sys.exit(main())
