"""`crmctl simulate`: a seeded generator of customer journeys, and a thin sender.

`journeys` is pure (same seed, same events); `sender` paces them to Kafka and ingest;
`command` is the crmctl subcommand.
"""
