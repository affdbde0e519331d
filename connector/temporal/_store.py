# SPDX-License-Identifier: MIT
"""
Where a Temporal run keeps what must stay out of its history: the large CSV files it
reads and the per-item results of its steps.

It is Redis, the one the workers already share for the rate limit (``--redis``): every
worker on every machine reaches it, writes are single round trips that many workers
can make at once, and keys expire on their own. A SQLite file, as the local journal,
would serve one machine only; Temporal's own history is what must stay bounded.

Keys (every one expires :data:`STORE_TTL` after its last write):

- ``twilio-connector:file:<sha256>``: a hash holding a CSV file, content-addressed (a
  running run's rows never change, and a file submitted twice is stored once):
  ``header`` (its columns, JSON), ``rows`` (how many; written last, so a half-stored
  file is never taken for a whole one) and ``c<n>``, the *n*-th chunk of
  :data:`FILE_CHUNK` rows, each a JSON array of the row's values.
- ``twilio-connector:run:<run id>:items:<step id>``: a hash from each item's index to
  its record, the JSON array of :meth:`connector.workflow.ItemRecord.to_json` (the
  journal's record: key, state, SID, status, error code, error, times).
- ``twilio-connector:run:<run id>:steps``: the run's steps that recorded items, scored
  by when they first did (their order in the run).

This module imports no Temporal code: ``runs export`` reads the store without it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from ..workflow import ItemRecord


__all__ = ["FILE_CHUNK", "STORE_PREFIX", "STORE_TTL", "RunStore", "StoredFile", "csv_row"]

#: The prefix of every key the store writes.
STORE_PREFIX: Final = "twilio-connector:"
#: Seconds a run's files and items are kept after their last write (a week, as claims).
STORE_TTL: Final = 7 * 24 * 3600
#: Rows of a stored CSV file per chunk (one Redis value, about 50 KB for short rows).
FILE_CHUNK: Final = 1000
# Chunks sent to Redis per round trip while storing a file.
_PIPELINE = 20


@dataclass(frozen=True)
class StoredFile:
    """
    A CSV file kept in the store, as a run's input names it.

    Attributes:
        key: Its Redis key.
        rows: How many rows it has (the header not counted).
    """

    key: str
    rows: int


def csv_row(header: Sequence[str], values: Sequence[str]) -> dict[str | None, Any]:
    """
    A stored row as :class:`csv.DictReader` gives it: missing values are ``None``, extra
    ones a list under the key ``None``.
    """
    row: dict[str | None, Any] = dict(zip(header, values, strict=False))
    if len(values) > len(header):
        row[None] = list(values[len(header) :])
    else:
        for name in header[len(values) :]:
            row[name] = None
    return row


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RunStore:
    """
    A Temporal deployment's store in Redis (see the module's docstring for the keys).

    Args:
        client: A ``redis.asyncio.Redis`` client.
        prefix: The prefix of every key.
        ttl: Seconds each key is kept after its last write.
    """

    def __init__(self, client: Any, *, prefix: str = STORE_PREFIX, ttl: int = STORE_TTL) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self._owned = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RunStore:
        """A store on the Redis at *url* (``redis://HOST:PORT/DB``); close it with :meth:`aclose`."""
        import redis.asyncio

        store = cls(redis.asyncio.Redis.from_url(url), **kwargs)
        store._owned = True
        return store

    async def aclose(self) -> None:
        """Close the client, if the store opened it."""
        if self._owned:
            await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- files ------------------------------------------------------------------------

    async def put_csv(self, path: Path) -> StoredFile:
        """
        Store a CSV file with a header row (UTF-8, as ``read_csv`` reads it), a chunk at
        a time: memory stays flat whatever its size.

        Returns:
            Where it is and how many rows it has.
        """
        sha = hashlib.sha256()
        with path.open("rb") as raw:
            for block in iter(lambda: raw.read(1 << 20), b""):
                sha.update(block)
        key = f"{self.prefix}file:{sha.hexdigest()}"
        known = await self.client.hget(key, "rows")
        if known is not None:
            await self.client.expire(key, self.ttl)
            return StoredFile(key, int(known))
        await self.client.delete(key)  # what a half-finished upload left
        rows = 0
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            chunks = _chunks(row for row in reader if row)  # DictReader skips blank rows
            pipe = self.client.pipeline(transaction=False)
            for number, chunk in enumerate(chunks):
                pipe.hset(key, f"c{number}", json.dumps(chunk, ensure_ascii=False))
                rows += len(chunk)
                if number % _PIPELINE == _PIPELINE - 1:
                    pipe.expire(key, self.ttl)
                    await pipe.execute()
            pipe.hset(key, mapping={"header": json.dumps(header, ensure_ascii=False)})
            pipe.hset(key, "rows", rows)
            pipe.expire(key, self.ttl)
            await pipe.execute()
        return StoredFile(key, rows)

    async def read_rows(self, key: str, start: int, count: int) -> tuple[list[str], list[Any]]:
        """
        Rows *start* to *start + count* of a stored file, as ``(header, rows)`` with each
        row the list of its values.

        Raises:
            LookupError: The file is not (or no longer) in the store.
        """
        first, last = start // FILE_CHUNK, (start + count - 1) // FILE_CHUNK
        fields = ["rows", "header", *(f"c{n}" for n in range(first, last + 1))]
        values = await self.client.hmget(key, fields)
        if values[0] is None or any(v is None for v in values[2:]):
            raise LookupError(
                f"{key} is not in the store (stored files are kept {self.ttl // 86400} days)"
            )
        rows: list[Any] = []
        for chunk in values[2:]:
            rows.extend(json.loads(chunk))
        offset = start - first * FILE_CHUNK
        return json.loads(values[1]), rows[offset : offset + count]

    # -- items ------------------------------------------------------------------------

    def _items_key(self, run_id: str, step_id: str) -> str:
        return f"{self.prefix}run:{run_id}:items:{step_id}"

    def _steps_key(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:steps"

    async def record(self, run_id: str, step_id: str, records: Iterable[ItemRecord]) -> int:
        """Keep item records of a step (a later record of an index replaces the earlier)."""
        mapping = {
            str(record.index): json.dumps(
                record.to_json(), ensure_ascii=False, separators=(",", ":")
            )
            for record in records
        }
        if not mapping:
            return 0
        items, steps = self._items_key(run_id, step_id), self._steps_key(run_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(items, mapping=mapping)
        pipe.expire(items, self.ttl)
        pipe.zadd(steps, {step_id: time.time()}, nx=True)
        pipe.expire(steps, self.ttl)
        await pipe.execute()
        return len(mapping)

    async def steps(self, run_id: str) -> list[str]:
        """The run's steps that recorded items, in the order they first did."""
        return [_text(s) for s in await self.client.zrange(self._steps_key(run_id), 0, -1)]

    async def item_count(self, run_id: str, step_id: str) -> int:
        """How many items of a step are recorded."""
        return int(await self.client.hlen(self._items_key(run_id, step_id)))

    async def iter_items(
        self, run_id: str, step_id: str, *, batch: int = 2000
    ) -> AsyncIterator[ItemRecord]:
        """A step's records in index order, read *batch* indexes at a time."""
        key = self._items_key(run_id, step_id)
        expected = await self.item_count(run_id, step_id)
        found, start = 0, 0
        while found < expected:
            values = await self.client.hmget(key, [str(i) for i in range(start, start + batch)])
            for value in values:
                if value is not None:
                    found += 1
                    yield ItemRecord.from_json(json.loads(value))
            start += batch
            if not any(values) and not await self.client.exists(key):
                return  # expired while being read


def _chunks(rows: Iterator[list[str]]) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == FILE_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
