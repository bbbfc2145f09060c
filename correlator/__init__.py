"""The correlator: Sigma rules compiled to Spark SQL, run over the event store, alerts out."""
