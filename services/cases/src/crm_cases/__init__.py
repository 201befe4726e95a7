"""The cases service: customer service cases with SLA clocks that are right.

Owns cases, SLA policies and business-hours calendars, SLA clocks and breaches, and a local
projection of each contact's value tier and churn band; publishes `crm.cases.v1`; consumes
resolved interactions, scores, contact events and privacy events (README.md).
"""
