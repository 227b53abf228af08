"""Adapters: the only code that touches databases, queues, indexes and SDKs. Built by `wiring`."""
