"""`python -m crm_ingest` serves; `python -m crm_ingest create-key ...` manages API keys."""

import sys

from crm_ingest.cli import main

sys.exit(main())
