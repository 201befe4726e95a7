"""ingest: the HTTP edge where channels publish interactions to `crm.interactions.raw.v1`."""
