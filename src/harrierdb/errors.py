"""One exception hierarchy for every user-facing failure.

Each class carries a stable numeric ``code`` (kept close to Milvus's error codes where one
exists) so callers can branch on it, and every message says what was wrong, with the
offending value, and what to do about it.
"""

from __future__ import annotations


class HarrierError(Exception):
    """Base class of all HarrierDB errors. Also exported as ``MilvusException``."""

    code: int = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"<{type(self).__name__}: (code={self.code}, message={self.message})>"


class ParamError(HarrierError):
    """An argument to an API call has the wrong type or value."""

    code = 1100


class SchemaError(HarrierError):
    """A schema, field definition or type is invalid."""

    code = 1101


class DataError(HarrierError):
    """Rows given to insert/upsert do not fit the collection's schema."""

    code = 1102


class PrimaryKeyError(DataError):
    """A primary key is missing, duplicated or already present."""

    code = 1103


class FilterError(HarrierError):
    """A filter expression cannot be parsed or evaluated."""

    code = 1104


class CollectionNotFoundError(HarrierError):
    """The named collection does not exist."""

    code = 100


class CollectionExistsError(HarrierError):
    """A collection with this name already exists."""

    code = 101


class PartitionNotFoundError(HarrierError):
    """The named partition does not exist."""

    code = 200


class FieldNotFoundError(HarrierError):
    """The named field is not in the collection's schema."""

    code = 1105


class IndexNotFoundError(HarrierError):
    """The named index does not exist."""

    code = 700


class MetricMismatchError(HarrierError):
    """A search asked for a metric other than the one the index was built with."""

    code = 1106


class StorageError(HarrierError):
    """The database on disk cannot be opened or written."""

    code = 1200


class FormatVersionError(StorageError):
    """The database was written in an on-disk format this version cannot read."""

    code = 1201


class ModelMismatchError(HarrierError):
    """Vectors come from an embedding model other than the one the collection records."""

    code = 1300


class LLMError(HarrierError):
    """The chat endpoint (RAG generation) could not be reached or gave an unusable reply."""

    code = 1400


# pymilvus users catch ``MilvusException``; keep their code working unchanged.
MilvusException = HarrierError
