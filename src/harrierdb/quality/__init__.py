"""Measuring embeddings: retrieval metrics, model comparison, drift monitoring, maps."""
