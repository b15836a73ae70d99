"""The embedded engine: storage, collections, the filter language and search planning."""
