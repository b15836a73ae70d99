"""The ``harrier`` command: inspect, query, import and export an embedded database.

    harrier info PATH [--json]
    harrier query PATH COLLECTION [--filter EXPR] [--fields a,b] [--limit N] [--count]
    harrier import PATH COLLECTION FILE [--format F] [--batch-size N] [--upsert] [--dimension D]
    harrier export PATH COLLECTION FILE [--format F] [--filter EXPR] [--fields a,b]

Adding a subcommand is one function decorated with ``@command(...)``: the decorator names it,
declares its arguments and registers it with the parser.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.client import MilvusClient
from harrierdb.engine.storage import DB_FILE
from harrierdb.errors import HarrierError
from harrierdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema

EXIT_USAGE = 2
CHUNK = 1000  # rows fetched per read while streaming query/export output


class CliError(Exception):
    """A user mistake the CLI detects itself (bad file, unknown format, ...)."""


# -- command registry ---------------------------------------------------------------------------

Command = Callable[[argparse.Namespace], int | None]
_COMMANDS: list[tuple[str, str, list[tuple[tuple, dict]], Command]] = []


def arg(*names: str, **options: Any) -> tuple[tuple, dict]:
    """An argument declaration for ``@command``: the arguments of ``add_argument``."""
    return names, options


PATH = arg("path", metavar="PATH", help="database directory")
COLLECTION = arg("collection", metavar="COLLECTION", help="collection name")
FILTER = arg("--filter", default="", metavar="EXPR", help="filter expression, e.g. 'age > 3'")
FIELDS = arg("--fields", type=lambda s: [f.strip() for f in s.split(",") if f.strip()],
             metavar="A,B", help="comma-separated output fields (default: all)")


def command(name: str, help: str, *args: tuple[tuple, dict]) -> Callable[[Command], Command]:
    """Register ``func`` as subcommand ``name`` taking the declared arguments."""
    def register(func: Command) -> Command:
        _COMMANDS.append((name, help, list(args), func))
        return func
    return register


# Modules that register further subcommands with @command when imported (the apps keep their
# commands next to their code).
COMMAND_MODULES: tuple[str, ...] = ("harrierdb.apps.commands", "harrierdb.apps.app_commands",
                                    "harrierdb.quality.commands")


def _load_command_modules() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name)


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = argparse.ArgumentParser(prog="harrier", description="HarrierDB command-line tool")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help, args, func in _COMMANDS:
        p = sub.add_parser(name, help=help, description=help)
        for names, options in args:
            p.add_argument(*names, **options)
        p.set_defaults(func=func)
    from harrierdb import bench  # `harrier bench` declares its many options itself

    bench.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for user errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.func(args) or 0
    except HarrierError as exc:
        return _fail(exc.message)
    except CliError as exc:
        return _fail(str(exc))
    except BrokenPipeError:  # `harrier query ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


# -- helpers ------------------------------------------------------------------------------------

def _open(path: str, create: bool = False) -> MilvusClient:
    """A client on an existing database (or a new one if ``create``)."""
    if not create and not (Path(path) / DB_FILE).is_file():
        raise CliError(f"no HarrierDB database at {path!r}")
    return MilvusClient(path)


def _schema(client: MilvusClient, collection: str) -> CollectionSchema:
    """The collection's schema (CollectionNotFoundError if it does not exist)."""
    return client._db.collection(collection).schema


def _detect_format(path: str, override: str | None, choices: dict[str, str]) -> str:
    if override:
        return override
    suffix = Path(path).suffix.lower()
    if suffix not in choices:
        known = ", ".join(sorted(choices))
        raise CliError(f"cannot tell the format of {path!r} from its extension (known: {known}); "
                       "pass --format")
    return choices[suffix]


def _iter_rows(client: MilvusClient, collection: str, filter: str, fields: list[str] | None,
               limit: int | None = None) -> Iterator[dict]:
    """Matching rows, fetched CHUNK at a time so big results are never all in memory."""
    pk = _schema(client, collection).primary_field.name
    ids = [r[pk] for r in client.query(collection, filter=filter, output_fields=[pk])]
    if limit is not None:
        ids = ids[:limit]
    for start in range(0, len(ids), CHUNK):
        yield from client.get(collection, ids[start:start + CHUNK], output_fields=fields)


def _jsonable(value: Any) -> Any:
    """Binary vectors (bytes) as lists of 0/1 bits, which import accepts back."""
    if isinstance(value, bytes):
        return np.unpackbits(np.frombuffer(value, np.uint8)).tolist()
    return value


def _json_line(row: dict) -> str:
    return json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False)


# -- info ---------------------------------------------------------------------------------------

@command("info", "show collections, row counts, fields, indexes and size on disk",
         PATH, arg("--json", action="store_true", help="machine-readable output"))
def cmd_info(args: argparse.Namespace) -> int:
    """Summarise the database at PATH."""
    with _open(args.path) as client:
        info = client._db.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    n = len(info["collections"])
    print(f"{info['path']}  ({_human_size(info['size_bytes'])}, {n} collection{'s' * (n != 1)})")
    for name, c in info["collections"].items():
        indexes = ", ".join(f"{n} ({t})" for n, t in c["indexes"].items()) or "none"
        print(f"\n{name}: {c['rows']} rows")
        print(f"  fields:     {', '.join(c['fields'])}")
        print(f"  indexes:    {indexes}")
        print(f"  partitions: {', '.join(c['partitions'])}")
    return 0


def _human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# -- query --------------------------------------------------------------------------------------

@command("query", "print matching rows as JSON lines (or their count)",
         PATH, COLLECTION, FILTER, FIELDS,
         arg("--limit", type=int, metavar="N", help="at most N rows"),
         arg("--count", action="store_true", help="print only the number of matching rows"))
def cmd_query(args: argparse.Namespace) -> int:
    """Rows of COLLECTION matching --filter, one JSON object per line."""
    if args.limit is not None and args.limit < 0:
        raise CliError(f"--limit must be >= 0, got {args.limit}")
    with _open(args.path) as client:
        if args.count:
            result = client.query(args.collection, filter=args.filter, output_fields=["count(*)"])
            print(result[0]["count(*)"])
            return 0
        for row in _iter_rows(client, args.collection, args.filter, args.fields, args.limit):
            print(_json_line(row))
    return 0


# -- import -------------------------------------------------------------------------------------

IMPORT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet",
                  ".pq": "parquet", ".npy": "npy"}


@command("import", "load rows from a JSONL, CSV, Parquet or .npy file",
         PATH, COLLECTION, arg("file", metavar="FILE"),
         arg("--format", choices=sorted(set(IMPORT_FORMATS.values())), help="override the extension"),
         arg("--batch-size", type=int, default=1000, metavar="N", help="rows per transaction"),
         arg("--upsert", action="store_true", help="replace rows with the same primary key"),
         arg("--dimension", type=int, metavar="D",
             help="create the collection (quick form) with this vector dimension if missing"),
         arg("--metric", default="COSINE", help="metric of a collection created with --dimension"),
         arg("--vector-field", metavar="NAME", help=".npy: the vector field (default: the only one)"),
         arg("--start-id", type=int, default=0, metavar="N", help=".npy: id of the first row"))
def cmd_import(args: argparse.Namespace) -> int:
    """Insert (or upsert) FILE's rows into COLLECTION in batches, one transaction each."""
    from tqdm import tqdm

    fmt = _detect_format(args.file, args.format, IMPORT_FORMATS)
    if not Path(args.file).is_file():
        raise CliError(f"no such file: {args.file!r}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1, got {args.batch_size}")
    started = time.perf_counter()
    with _open(args.path, create=True) as client:
        _ensure_collection(client, args)
        schema = _schema(client, args.collection)
        total, batches = READERS[fmt](args.file, schema, args)
        write = client.upsert if args.upsert else client.insert
        done = 0
        with tqdm(total=total, unit="rows", desc=args.collection, disable=None, file=sys.stderr) as bar:
            try:
                for batch in batches:
                    write(args.collection, batch)
                    done += len(batch)
                    bar.update(len(batch))
            except (HarrierError, CliError) as exc:
                message = exc.message if isinstance(exc, HarrierError) else str(exc)
                if done:  # earlier batches are committed; say so, and where to resume
                    message += f" (after {done} rows were imported; the failing batch starts at row {done})"
                raise CliError(message) from None
    print(f"imported {done} rows into {args.collection} in {time.perf_counter() - started:.2f} s")
    return 0


def _ensure_collection(client: MilvusClient, args: argparse.Namespace) -> None:
    """Create the collection in quick form when it is missing and --dimension says how."""
    if client.has_collection(args.collection):
        return
    if args.dimension is None:
        raise CliError(f"collection {args.collection!r} does not exist in {args.path!r}; "
                       "pass --dimension D to create it")
    client.create_collection(args.collection, dimension=args.dimension, metric_type=args.metric,
                             vector_field_name=args.vector_field or "vector")


def _batched(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


Batches = tuple[int | None, Iterator[list[dict]]]  # (row count if known, batches of rows)
Reader = Callable[[str, CollectionSchema, argparse.Namespace], Batches]


def read_jsonl(path: str, schema: CollectionSchema, args: argparse.Namespace) -> Batches:
    """One JSON object per line; blank lines are skipped."""
    def rows() -> Iterator[dict]:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CliError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise CliError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield row
    return None, _batched(rows(), args.batch_size)


def read_csv(path: str, schema: CollectionSchema, args: argparse.Namespace) -> Batches:
    """A header row, then one row per line; cells are parsed by the type of their field."""
    declared = {f.name: f for f in schema.fields}

    def rows() -> Iterator[dict]:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            try:
                for record in reader:
                    row = {}
                    for column, text in record.items():
                        if column is None or text is None:
                            raise CliError(f"{path}:{reader.line_num}: row has a different number "
                                           "of cells than the header")
                        try:
                            value = _parse_cell(declared.get(column), text)
                        except ValueError:
                            ftype = declared[column].dtype.name
                            raise CliError(f"{path}:{reader.line_num}: column {column!r} ({ftype}): "
                                           f"cannot parse {text!r:.60}") from None
                        if value is not None or column in declared:
                            row[column] = value
                    yield row
            except csv.Error as exc:
                raise CliError(f"{path}:{reader.line_num}: {exc}") from None
    return None, _batched(rows(), args.batch_size)


def _parse_cell(f: FieldSchema | None, text: str) -> Any:
    """A CSV cell as the value for field ``f`` (None: an undeclared, dynamic column)."""
    if f is not None and f.dtype is DataType.VARCHAR:
        return text
    if text == "":
        return None
    if f is None or f.dtype is DataType.JSON:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text  # plain text
    t = f.dtype
    if t.is_integer:
        return int(text)
    if t in (DataType.FLOAT, DataType.DOUBLE):
        return float(text)
    if t is DataType.BOOL:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(text)
    value = json.loads(text)  # ARRAY and vectors: a JSON list
    if not isinstance(value, list):
        raise ValueError(text)
    return value


def read_parquet(path: str, schema: CollectionSchema, args: argparse.Namespace) -> Batches:
    """Columns by field name; JSON fields may be JSON text, '$meta' holds dynamic keys as JSON."""
    pq = _pyarrow_parquet()
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise CliError(f"cannot read {path!r} as Parquet: {exc}") from None
    json_fields = {f.name for f in schema.fields if f.dtype is DataType.JSON}
    declared = set(schema.field_names)

    def fix(row: dict) -> dict:
        meta = row.pop(DYNAMIC_FIELD, None)
        out = {k: v for k, v in row.items() if v is not None or k in declared}
        for name in json_fields & out.keys():
            if isinstance(out[name], str):
                out[name] = _parse_cell(None, out[name])
        if meta:
            out.update(json.loads(meta) if isinstance(meta, str) else meta)
        return out

    batches = ([fix(r) for r in b.to_pylist()] for b in pf.iter_batches(batch_size=args.batch_size))
    return pf.metadata.num_rows, batches


def read_npy(path: str, schema: CollectionSchema, args: argparse.Namespace) -> Batches:
    """A 2-D numeric array: row i becomes id start_id + i with the vector in --vector-field."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise CliError(f"cannot read {path!r} as .npy: {exc}") from None
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        raise CliError(f"{path!r} holds a {array.ndim}-D {array.dtype} array; expected a 2-D float array")
    field = _vector_field(schema, args.vector_field)
    pk = schema.primary_field
    make_id = str if pk.dtype is DataType.VARCHAR else int

    def batches() -> Iterator[list[dict]]:
        for start in range(0, len(array), args.batch_size):
            chunk = np.asarray(array[start:start + args.batch_size])
            rows = [{field: vec} for vec in chunk]
            if not pk.auto_id:
                for i, row in enumerate(rows, args.start_id + start):
                    row[pk.name] = make_id(i)
            yield rows
    return len(array), batches()


def _vector_field(schema: CollectionSchema, name: str | None) -> str:
    names = [f.name for f in schema.vector_fields]
    if name:
        if name not in names:
            raise CliError(f"--vector-field {name!r} is not a vector field; vector fields: {names}")
        return name
    if len(names) != 1:
        raise CliError(f"the collection has several vector fields {names}; pass --vector-field")
    return names[0]


READERS: dict[str, Reader] = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet, "npy": read_npy}


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CliError("Parquet needs pyarrow: pip install 'harrierdb[io]'") from None
    return pq


# -- export -------------------------------------------------------------------------------------

EXPORT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@command("export", "write rows to a JSONL or Parquet file (import reads it back)",
         PATH, COLLECTION, arg("file", metavar="FILE"), FILTER, FIELDS,
         arg("--format", choices=sorted(set(EXPORT_FORMATS.values())), help="override the extension"))
def cmd_export(args: argparse.Namespace) -> int:
    """Write COLLECTION's rows matching --filter to FILE."""
    fmt = _detect_format(args.file, args.format, EXPORT_FORMATS)
    started = time.perf_counter()
    with _open(args.path) as client:
        schema = _schema(client, args.collection)
        rows = _iter_rows(client, args.collection, args.filter, args.fields)
        count = write_jsonl(args.file, rows) if fmt == "jsonl" else write_parquet(args.file, rows, schema)
    print(f"exported {count} rows from {args.collection} to {args.file} "
          f"in {time.perf_counter() - started:.2f} s")
    return 0


def write_jsonl(path: str, rows: Iterator[dict]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(_json_line(row) + "\n")
            count += 1
    return count


def write_parquet(path: str, rows: Iterator[dict], schema: CollectionSchema) -> int:
    """Typed columns for declared fields; JSON fields as JSON text; dynamic keys in '$meta'."""
    pq = _pyarrow_parquet()
    import pyarrow as pa

    columns = {f.name: _arrow_type(pa, f) for f in schema.fields}
    if schema.enable_dynamic_field:
        columns[DYNAMIC_FIELD] = pa.string()
    json_fields = {f.name for f in schema.fields if f.dtype is DataType.JSON}
    count = 0
    writer = arrow_schema = None
    try:
        for chunk in _batched(rows, CHUNK):
            if writer is None:  # every row has the same keys (--fields), so chunk 1 fixes the columns
                arrow_schema = pa.schema([(n, t) for n, t in columns.items()
                                          if n == DYNAMIC_FIELD or n in chunk[0]])
                writer = pq.ParquetWriter(path, arrow_schema)
            records = [_parquet_record(r, columns, json_fields) for r in chunk]
            writer.write_table(pa.Table.from_pylist(records, schema=arrow_schema))
            count += len(chunk)
        if writer is None:  # no rows: still write a valid, empty file
            pq.write_table(pa.table({n: pa.array([], t) for n, t in columns.items()}), path)
    finally:
        if writer is not None:
            writer.close()
    return count


def _parquet_record(row: dict, columns: dict, json_fields: set[str]) -> dict:
    out, meta = {}, {}
    for key, value in row.items():
        if key not in columns:
            meta[key] = value
        elif key in json_fields and value is not None:
            out[key] = json.dumps(value, ensure_ascii=False)
        else:
            out[key] = _jsonable(value)
    if meta:
        out[DYNAMIC_FIELD] = json.dumps(meta, ensure_ascii=False)
    return out


def _arrow_type(pa: Any, f: FieldSchema) -> Any:
    scalars = {
        DataType.BOOL: pa.bool_(), DataType.INT8: pa.int8(), DataType.INT16: pa.int16(),
        DataType.INT32: pa.int32(), DataType.INT64: pa.int64(), DataType.FLOAT: pa.float32(),
        DataType.DOUBLE: pa.float64(), DataType.VARCHAR: pa.string(), DataType.JSON: pa.string(),
        DataType.INT8_VECTOR: pa.list_(pa.int8()), DataType.BINARY_VECTOR: pa.list_(pa.uint8()),
    }
    if f.dtype is DataType.ARRAY:
        return pa.list_(scalars[f.element_type])
    return scalars.get(f.dtype, pa.list_(pa.float32()))  # float vectors


# -- reembed ------------------------------------------------------------------------------------

@command("reembed", "copy a collection into a new one with its vectors re-embedded by another model",
         PATH, COLLECTION,
         arg("--text-field", required=True, help="VARCHAR field holding the text to embed"),
         arg("--vector-field", required=True, help="vector field to fill with the new model"),
         arg("--to", required=True, dest="target", metavar="NEW_COLLECTION", help="target collection"),
         arg("--model", default="all-MiniLM-L6-v2", help="model name (default: %(default)s)"),
         arg("--precision", default="int8", choices=["int8", "float32"], help="default: %(default)s"),
         arg("--model-dir", default=None, help="a local model directory instead of a packaged model"),
         arg("--batch-size", type=int, default=256, help="rows per transaction (default: %(default)s)"))
def cmd_reembed(args: argparse.Namespace) -> int:
    """Re-embed COLLECTION into --to; run again to resume after an interruption."""
    from harrierdb.embed.dense import SentenceEmbedding
    from harrierdb.migrate import reembed

    params = {"model_name": args.model, "precision": args.precision}
    if args.model_dir:
        params["model_dir"] = args.model_dir
    model = (SentenceEmbedding(model_dir=args.model_dir, precision=args.precision) if args.model_dir
             else SentenceEmbedding(model=args.model, precision=args.precision))
    start = time.perf_counter()
    with _open(args.path) as client:
        n = reembed(client, args.collection, args.text_field, args.vector_field, model, args.target,
                    params, args.batch_size)
        total = client.get_collection_stats(args.target)["row_count"]
    print(f"re-embedded {n} rows into {args.target} ({total} in all) with {model.identity.name} "
          f"{model.identity.version} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
