"""`python -m proxy` is the `ollama-gateway` command."""

import sys

from .cli import main

sys.exit(main())
