"""muse-stream: multi-tenant model serving with seamless model updates, on Kafka.

Layout (one module, one job):

- ``transforms``  posterior correction and quantile mapping (pure numpy, no Kafka)
- ``predictors``  versioned, immutable predictor DAGs: model -> correction -> quantile map
- ``models``      the shared model registry (artifacts loaded once while in use)
- ``broker``      a local Apache Kafka (KRaft) from Maven Central, and the choice of broker
- ``topics``      topic naming and administration (per-tenant prefixes, compacted config topic)
- ``cli``         the ``muse`` command
"""

__version__ = "0.1.0"
