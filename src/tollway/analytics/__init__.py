"""Call records, events, analytics rollups and metrics.

The worker side (`sink`, `wire`, `spool`, `metrics`, `redaction`) never imports the store:
a worker batches what its calls did and ships it off the hot path to the recorder companion
(`recorder`), which writes it to the store (`storage`, `rollups`), keeps the metrics and
delivers webhooks. The admin API reads it back through `queries`.
"""
