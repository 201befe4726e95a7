"""`python -m crm_cases` serves the cases service."""

from crm_cases.app import main

main()
