"""Every SQL statement of the campaigns service (asyncpg, $n parameters), a module per
feature:

    views        the contact projection campaigns evaluates segments on
    segments     segments and who is in them (memberships)
    campaigns    campaign definitions and their status
    enrolments   contacts' ways through campaigns
    sends        the send ledger and the frequency caps
    attribution  touches and conversions
    stats        the figures per campaign and step (reads only)

Functions take the caller's connection: the caller owns the transaction. A batch is read
with one statement per question and written with one multi-row statement per table
(`jsonb_populate_recordset`), whatever its size.
"""
