"""Alert policy: which matches become which messages, where, and when.

Everything here is pure (time is an argument, state is passed in); the pipeline turns the
decisions into rows of the store's outbox inside ``commit_poll``'s transaction. See
docs/alerting.md for the operator's view.
"""
