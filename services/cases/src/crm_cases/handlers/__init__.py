"""Use cases of the cases service, a module per feature; each takes the caller's connection
inside the caller's transaction (the consumer runner's for events, the route's for
commands, the timer's own for a round) and refuses with the kit's domain errors.

    casework      every change to a case, its SLA clocks, activity and events (the core)
    interactions  resolved interactions: open, join, reply, respond, rate
    scores        the value projection; re-prioritising open cases
    subjects      merges, unmerges and erasures (crm_kit.subjects)
    cases         cases by hand: open, change, move, assign, comment, read, list
    policies      SLA policies and business-hours calendars
    assignment    queues and agents; waiting cases handed to agents with room
    timer         the SLA timer's round: breaches once
    context       settings and clock, the publisher of case events, new ids
"""
