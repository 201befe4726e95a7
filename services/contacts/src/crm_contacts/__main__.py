"""`python -m crm_contacts` serves the contacts service."""

from crm_contacts.app import main

main()
