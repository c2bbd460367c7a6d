"""Recordings: the trades (and books) a relay received, kept in a directory of Parquet part files.

Layout of a recording at ``PATH`` (written by :class:`~backtrader_alltick.sinks.recording.RecordingSink`)::

    PATH/recording.json             format version, dialect, symbols seen
    PATH/ticks/part-000001.parquet  one part per flush: symbol, time, price, volume, turnover, seq, direction
    PATH/depth/part-000001.parquet  books, when recorded: symbol, time, bid/ask prices and volumes

A part file is written under a hidden temporary name, synced, then renamed, so a process
killed at any moment leaves only whole parts: everything flushed stays readable, and a
restart appends new parts.  ``pandas.read_parquet(PATH + "/ticks")`` reads the trades as
one table (hidden files are skipped).  Needs ``pip install backtrader-alltick[parquet]``.

Example::

    recording = Recording("session.rec")
    recording.symbols, recording.start_ms, recording.end_ms
    ticks = recording.ticks("BTCUSDT")
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import ConfigError, ProtocolError
from .records import Depth, Tick

logger: logging.Logger = logging.getLogger(__name__)

FORMAT = "backtrader-alltick-recording"
FORMAT_VERSION = 1
META_FILE = "recording.json"
KINDS = ("ticks", "depth")
PART_PREFIX, PART_SUFFIX = "part-", ".parquet"


def require_pyarrow() -> Any:
    """Import pyarrow (and pyarrow.parquet), or raise a ConfigError naming the extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError(
            "recordings are Parquet files and need pyarrow: pip install "
            "'backtrader-alltick[parquet]', was not installed"
        ) from None
    return pyarrow


def schema(kind: str) -> Any:
    """The Arrow schema of one kind of part file."""
    pa = require_pyarrow()
    if kind == "ticks":
        return pa.schema(
            [
                ("symbol", pa.string()),
                ("time", pa.int64()),
                ("price", pa.float64()),
                ("volume", pa.float64()),
                ("turnover", pa.float64()),
                ("seq", pa.int64()),
                ("direction", pa.int8()),
            ]
        )
    levels = pa.list_(pa.float64())
    return pa.schema(
        [
            ("symbol", pa.string()),
            ("time", pa.int64()),
            ("bid_price", levels),
            ("bid_volume", levels),
            ("ask_price", levels),
            ("ask_volume", levels),
        ]
    )


def part_paths(root: Path, kind: str) -> list[Path]:
    """Whole part files of ``kind``, in the order they were written (hidden temporaries excluded)."""
    folder = Path(root) / kind
    if not folder.is_dir():
        return []
    parts = [
        path
        for path in folder.iterdir()
        if path.name.startswith(PART_PREFIX) and path.name.endswith(PART_SUFFIX)
    ]
    return sorted(parts, key=part_number)


def part_number(path: Path) -> int:
    return int(path.name[len(PART_PREFIX) : -len(PART_SUFFIX)])


def read_meta(root: Path) -> dict[str, Any]:
    """The recording's ``recording.json``; raise if it is missing or of a format this version cannot read."""
    path = Path(root) / META_FILE
    try:
        meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"recording must be a directory written by 'alltick-bt record --file', "
            f"was {str(root)!r} (no {META_FILE} in it)"
        ) from None
    except ValueError as e:
        raise ProtocolError(f"recording {str(root)!r}: {META_FILE} is not JSON ({e})") from None
    if meta.get("format") != FORMAT or meta.get("version", 0) > FORMAT_VERSION:
        raise ProtocolError(
            f"recording {str(root)!r} has format {meta.get('format')!r} version "
            f"{meta.get('version')!r}; this version reads {FORMAT} up to {FORMAT_VERSION}"
        )
    return meta


def write_meta(root: Path, meta: dict[str, Any]) -> None:
    """Replace ``recording.json`` atomically (a kill leaves the old or the new one, never half)."""
    temporary = Path(root) / f".{META_FILE}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, Path(root) / META_FILE)


@dataclass(frozen=True)
class TickColumns:
    """One symbol's recorded trades as equal-length arrays, sorted by time (then recording order)."""

    time: npt.NDArray[np.int64]  # epoch ms
    price: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]
    turnover: npt.NDArray[np.float64]
    seq: npt.NDArray[np.int64]  # -1 where the service sent none
    direction: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.time)


class Recording:
    """Read a recording directory: trades and books per symbol, sorted by the service's timestamps.

    ``start_ms``/``end_ms`` limit what is read to trades with ``start_ms <= time < end_ms``.
    Everything is loaded once, at construction (a day of a busy symbol is a few MB).

    Example::

        recording = Recording("btc.rec", start_ms=t0, end_ms=t1)
        recording.columns("BTCUSDT").price     # numpy array
    """

    def __init__(
        self, path: str | os.PathLike[str], start_ms: int | None = None, end_ms: int | None = None
    ) -> None:
        require_pyarrow()
        self.path: Path = Path(path)
        if start_ms is not None and end_ms is not None and start_ms >= end_ms:
            raise ConfigError(
                f"the recording's --from must be before --to, was {start_ms} >= {end_ms} (epoch ms)"
            )
        self.meta: dict[str, Any] = read_meta(self.path)
        self.dialect: str = self.meta.get("dialect", "alltick")
        self._columns = _load_ticks(self.path, start_ms, end_ms)
        self._books = _load_depth(self.path, start_ms, end_ms)
        if not self._columns:
            window = "" if start_ms is None and end_ms is None else " in the window asked for"
            raise ConfigError(
                f"recording {str(self.path)!r} holds no trades{window}; record some first "
                "(alltick-bt record SYMBOL --file PATH)"
            )

    def __repr__(self) -> str:
        return f"Recording({str(self.path)!r}, symbols={self.symbols}, trades={self.trade_count})"

    @property
    def symbols(self) -> list[str]:
        """Symbols with at least one recorded trade, in canonical form."""
        return sorted(self._columns)

    @property
    def trade_count(self) -> int:
        return sum(len(columns) for columns in self._columns.values())

    @property
    def start_ms(self) -> int:
        """Time of the first recorded trade."""
        return min(int(columns.time[0]) for columns in self._columns.values())

    @property
    def end_ms(self) -> int:
        """Time of the last recorded trade."""
        return max(int(columns.time[-1]) for columns in self._columns.values())

    def columns(self, symbol: str) -> TickColumns:
        """The recorded trades of ``symbol`` as arrays; KeyError if it has none."""
        return self._columns[symbol]

    def ticks(self, symbol: str) -> list[Tick]:
        """The recorded trades of ``symbol`` as records."""
        c = self._columns.get(symbol)
        if c is None:
            return []
        return [
            Tick(symbol, t, p, v, u, None if q < 0 else q, d)
            for t, p, v, u, q, d in zip(
                c.time.tolist(),
                c.price.tolist(),
                c.volume.tolist(),
                c.turnover.tolist(),
                c.seq.tolist(),
                c.direction.tolist(),
            )
        ]

    def books(self, symbol: str) -> list[Depth]:
        """The recorded order books of ``symbol`` (empty when depth was not recorded)."""
        return self._books.get(symbol, [])


def _read_parts(root: Path, kind: str, start_ms: int | None, end_ms: int | None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = []
    for path in part_paths(root, kind):
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            raise ProtocolError(f"recording {str(root)!r}: part {path.name} cannot be read ({e})") from None
        if start_ms is not None:
            table = table.filter(pc.greater_equal(table["time"], start_ms))
        if end_ms is not None:
            table = table.filter(pc.less(table["time"], end_ms))
        tables.append(table.cast(schema(kind)))
    return pa.concat_tables(tables) if tables else None


def _load_ticks(root: Path, start_ms: int | None, end_ms: int | None) -> dict[str, TickColumns]:
    table = _read_parts(root, "ticks", start_ms, end_ms)
    if table is None or not table.num_rows:
        return {}
    symbols = np.asarray(table["symbol"].to_numpy(zero_copy_only=False))
    time = table["time"].to_numpy().astype(np.int64)
    seq = table["seq"].fill_null(-1).to_numpy().astype(np.int64)
    values = {name: table[name].to_numpy() for name in ("price", "volume", "turnover")}
    direction = table["direction"].fill_null(0).to_numpy().astype(np.int64)
    out: dict[str, TickColumns] = {}
    for symbol in np.unique(symbols).tolist():
        rows = np.flatnonzero(symbols == symbol)
        # Stable: trades of one millisecond keep the order the service sent them in.
        rows = rows[np.argsort(time[rows], kind="stable")]
        out[symbol] = TickColumns(
            time[rows],
            values["price"][rows].astype(np.float64),
            values["volume"][rows].astype(np.float64),
            values["turnover"][rows].astype(np.float64),
            seq[rows],
            direction[rows],
        )
    return out


def _load_depth(root: Path, start_ms: int | None, end_ms: int | None) -> dict[str, list[Depth]]:
    table = _read_parts(root, "depth", start_ms, end_ms)
    if table is None or not table.num_rows:
        return {}
    out: dict[str, list[Depth]] = {}
    for row in table.to_pylist():
        bids = tuple(zip(row["bid_price"] or (), row["bid_volume"] or ()))
        asks = tuple(zip(row["ask_price"] or (), row["ask_volume"] or ()))
        out.setdefault(row["symbol"], []).append(Depth(row["symbol"], row["time"], bids, asks))
    for books in out.values():
        books.sort(key=lambda book: book.time)
    return out
