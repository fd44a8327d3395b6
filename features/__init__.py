"""Feature engineering: the data contract, the synthetic world and point-in-time features."""
