"""Resource kinds the API server serves: names, versions, schemas, printer columns."""
