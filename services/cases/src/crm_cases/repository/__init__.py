"""Every SQL statement of the cases service (asyncpg, $n parameters), a module per feature:

    cases     cases and what happened on them (activity)
    sla       calendars, policies, SLA clocks and the breach record
    scores    the local projection of each contact's value tier and churn band
    assignment  queues, agents and their loads, the cases waiting in queues

Functions take the caller's connection: the caller owns the transaction. A batch is read
with one statement per question and written with one multi-row statement per table
(`jsonb_populate_recordset`), whatever its size.
"""
