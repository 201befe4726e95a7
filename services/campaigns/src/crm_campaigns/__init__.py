"""The campaigns service: who gets which message, through which channel, and when.

Owns campaigns, segments, a local projection of each contact (stage, scores, consent,
traits, open cases, recent behaviour), segment memberships, enrolments, the send ledger and
attribution; publishes `crm.campaigns.v1`; consumes resolved interactions, scores, contact,
case and privacy events (README.md). Delivery is a channel system's job: campaigns emits
`campaign.step_due` for the channel to deliver.
"""
