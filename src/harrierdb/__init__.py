"""HarrierDB: an embedded vector database for embeddings, with pymilvus's API.

>>> from harrierdb import MilvusClient
>>> client = MilvusClient("demo.db")
"""

from harrierdb.client import Client, IndexParams, LoadState, MilvusClient
from harrierdb.errors import HarrierError, MilvusException
from harrierdb.orm import Collection, MutationResult, connections
from harrierdb.ranker import AnnSearchRequest, RRFRanker, WeightedRanker
from harrierdb.schema import CollectionSchema, DataType, FieldSchema, Function, FunctionType

__version__ = "0.1.0"

__all__ = [
    "AnnSearchRequest", "RRFRanker", "WeightedRanker", "Client", "Collection", "CollectionSchema", "DataType", "FieldSchema", "Function",
    "FunctionType", "HarrierError", "IndexParams", "LoadState", "MilvusClient", "MilvusException",
    "MutationResult", "connections", "__version__",
]
