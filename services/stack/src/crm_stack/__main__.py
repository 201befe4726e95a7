import sys

from crm_stack.cli import main

sys.exit(main())
