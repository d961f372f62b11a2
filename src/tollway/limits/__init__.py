"""Rate limits and budgets: the counters they are kept in (one node's shared memory, or Redis
for many nodes), the rules that say which counters a call takes from, and budget periods.

The `rate_limit` and `budget` policies (tollway.policies) are this package's front; the data
plane never imports it.
"""
