"""Vector indexes: exact search, index specifications, and the ANN index kernels."""
