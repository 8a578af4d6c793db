"""The data plane: pure batch scoring (`scoring`), and the exactly-once Kafka loop around it (`worker`)."""
