"""Live monitoring of tenants' scores: a Faust app (at-least-once) over every tenant's output topic.

``aggregates`` is the pure, Kafka-free part; ``app`` builds the Faust app (imported lazily by the
CLI, since Faust is heavy to import).
"""
