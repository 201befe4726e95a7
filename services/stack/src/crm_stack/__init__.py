"""The embedded stack: Postgres and a Kafka-compatible broker on one machine, and `crmctl`."""
