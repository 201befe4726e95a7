"""`python -m crm_campaigns` serves the campaigns service."""

from crm_campaigns.app import main

main()
