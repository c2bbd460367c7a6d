"""``RecordingSink``: write trades (and books) into a recording directory of Parquet part files.

Each flush of the background thread becomes one part file per kind, written under a
hidden temporary name, synced to disk and renamed into place: a ``kill -9`` at any
moment leaves every flushed part whole and readable, and a restart continues numbering
after the last part, so it appends.  Layout and reader: :mod:`backtrader_alltick.recording`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TransportError
from ..recording import (
    FORMAT,
    FORMAT_VERSION,
    KINDS,
    META_FILE,
    PART_PREFIX,
    PART_SUFFIX,
    part_number,
    part_paths,
    read_meta,
    require_pyarrow,
    schema,
    write_meta,
)
from ..records import Depth, Tick
from .buffer import BufferedWriter

logger: logging.Logger = logging.getLogger(__name__)


class RecordingSink(BufferedWriter):
    """Append :class:`Tick` and :class:`Depth` records to a recording directory, flushed in part files.

    Parameters
    ----------
    path : str or Path
        The recording directory; created if missing, appended to if it holds a recording.
    dialect : str
        The service dialect the records came from (kept in ``recording.json``).
    flush_interval : float
        Seconds the oldest queued record may wait before a part is written; a kill loses at
        most this much (plus what is queued past ``batch``).
    batch, max_buffer
        Records per part at most; records kept while the disk refuses writes.

    Example::

        with RecordingSink("session.rec", dialect="alltick") as sink:
            sink.write(ticks)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dialect: str = "alltick",
        batch: int = 100_000,
        flush_interval: float = 2.0,
        max_buffer: int = 2_000_000,
    ) -> None:
        self._pa = require_pyarrow()
        import pyarrow.parquet as pq

        self._pq = pq
        self.path: Path = Path(path)
        super().__init__(
            target=str(self.path),
            batch=batch,
            max_buffer=max_buffer,
            flush_interval=flush_interval,
            retries=None,
            backoff_initial=0.5,
            backoff_max=10.0,
        )
        self.dialect = dialect
        self.skipped: int = 0
        self.parts_written: int = 0
        self._meta = self._open_directory()
        self._next_part = 1 + max(
            (part_number(p) for kind in KINDS for p in part_paths(self.path, kind)), default=0
        )
        self._start()

    def __repr__(self) -> str:
        return f"RecordingSink({str(self.path)!r}, pending={self.pending})"

    def _open_directory(self) -> dict[str, Any]:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(
                f"recording path must be a directory (a recording is a folder of part files), "
                f"was the file {str(self.path)!r}"
            )
        if (self.path / META_FILE).exists():
            meta = read_meta(self.path)
            if meta.get("dialect") != self.dialect:
                raise ConfigError(
                    f"recording {str(self.path)!r} holds {meta.get('dialect')} data; append "
                    f"to it with --dialect {meta.get('dialect')} or pick a new path, was "
                    f"{self.dialect}"
                )
        elif self.path.is_dir() and any(self.path.iterdir()):
            raise ConfigError(
                f"recording path must be a new or empty directory or an existing recording, "
                f"was {str(self.path)!r} (not empty, no {META_FILE})"
            )
        else:
            meta = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "dialect": self.dialect,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "symbols": [],
            }
        for kind in KINDS:
            folder = self.path / kind
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob(".*.tmp"):  # a part a killed writer did not finish
                stale.unlink()
        write_meta(self.path, meta)
        return meta

    def _prepare(self, records: Iterable[Any]) -> list[Any]:
        items = []
        for record in records:
            if type(record) in (Tick, Depth):
                items.append(record)
            else:
                self.skipped += 1
        return items

    def _send(self, items: list[Any]) -> None:
        ticks = [item for item in items if type(item) is Tick]
        books = [item for item in items if type(item) is Depth]
        staged: list[tuple[Path, Path]] = []
        try:
            # Both kinds are written in full before either is renamed into place, so a failed
            # batch (retried whole) cannot leave its trades recorded twice.
            if ticks:
                staged.append(self._stage_part("ticks", _tick_table(self._pa, ticks)))
            if books:
                staged.append(self._stage_part("depth", _depth_table(self._pa, books)))
            for temporary, final in staged:
                os.replace(temporary, final)
                _sync_directory(final.parent)
                self.parts_written += 1
            symbols = sorted(set(self._meta["symbols"]) | {item.symbol for item in items})
            if symbols != self._meta["symbols"]:
                self._meta["symbols"] = symbols
                write_meta(self.path, self._meta)
        except OSError as e:  # disk full, permissions: keep the batch and retry
            for temporary, _ in staged:
                temporary.unlink(missing_ok=True)
            raise TransportError(f"cannot write to the recording {str(self.path)!r} ({e})") from None

    def _stage_part(self, kind: str, table: Any) -> tuple[Path, Path]:
        """Write ``table`` to a hidden temporary file on disk; return (temporary, final) paths."""
        name = f"{PART_PREFIX}{self._next_part:06d}{PART_SUFFIX}"
        self._next_part += 1
        folder = self.path / kind
        temporary = folder / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            self._pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        return temporary, folder / name


def _tick_table(pa: Any, ticks: list[Tick]) -> Any:
    return pa.table(
        {
            "symbol": [t.symbol for t in ticks],
            "time": [t.time for t in ticks],
            "price": [t.price for t in ticks],
            "volume": [t.volume for t in ticks],
            "turnover": [t.turnover for t in ticks],
            "seq": [t.seq for t in ticks],
            "direction": [t.direction for t in ticks],
        },
        schema=schema("ticks"),
    )


def _depth_table(pa: Any, books: list[Depth]) -> Any:
    def side(levels, column: int) -> list[list[float]]:
        return [[level[column] for level in book_side] for book_side in levels]

    bids, asks = [b.bids for b in books], [b.asks for b in books]
    return pa.table(
        {
            "symbol": [b.symbol for b in books],
            "time": [b.time for b in books],
            "bid_price": side(bids, 0),
            "bid_volume": side(bids, 1),
            "ask_price": side(asks, 0),
            "ask_volume": side(asks, 1),
        },
        schema=schema("depth"),
    )


def _sync_directory(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
