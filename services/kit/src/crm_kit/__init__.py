"""Runtime kit shared by the CRM services (settings, Postgres, outbox, inbox, consumers, HTTP)."""
