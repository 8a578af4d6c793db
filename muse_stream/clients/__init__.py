"""Kafka client plumbing in one place: client settings (security included), producing in batches,
reading a topic to its end, retries, and topic administration.

Nothing here runs a broker (that is :mod:`muse_stream.broker`), and nothing here knows about
scoring. Import the modules themselves; this package imports nothing so that pure code can use
:mod:`muse_stream.clients.settings` constants without loading confluent_kafka.
"""
