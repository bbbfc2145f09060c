"""The detection engine: compiled rules (`correlator.model`) run over the event store with Spark.

- `options`: `EngineOptions`, every switch and knob in one value;
- `plan`: `plan_matching(rules, options) -> MatchPlan`, every choice of how rules are evaluated (Spark-free);
- `literal_index`: the multi-literal pass shared by rules without a route;
- `matching`: a `MatchPlan` applied to a DataFrame of events;
- `events`: the columns every step reads, the time window;
- `correlation`: Sigma correlation rules as window functions;
- `detection`: `run_detection`, read -> match -> alerts -> correlations -> alert store;
- `alerts`: alert documents, ids, and the Parquet alert store;
- `jvm` (and `jvm/src`): CitySOC's SQL functions in Java; `session`: the Spark session.
"""
