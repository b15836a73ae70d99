"""What embeddings are for: semantic search over documents, recommendation, RAG."""
