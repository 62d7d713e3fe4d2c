"""Ray actors: inbound and outbound connections, router shards, the statistics aggregator."""
