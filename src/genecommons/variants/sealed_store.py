"""The Zarr store of a variant store's genotypes: every value sealed by a `sealed.ValueSealer`
on the way in and opened on the way out (sealed.py says how). Imported when a store's genotypes
are opened: zarr is not needed to start the app.

No web framework, no database: file formats only.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from pathlib import Path
from typing import Any, Literal, Self

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore, WrapperStore

from genecommons.variants.sealed import ValueSealer


def _sliced(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :] if byte_range.suffix else b""
    raise TypeError(f"unexpected byte range {byte_range!r}")


class SealedStore(WrapperStore[LocalStore]):
    """A Zarr store over a local directory whose every value is sealed by a `ValueSealer`."""

    def __init__(self, store: LocalStore, *, sealer: ValueSealer) -> None:
        super().__init__(store)
        self._sealer = sealer

    def _with_store(self, store: LocalStore) -> Self:
        return type(self)(store, sealer=self._sealer)

    def __repr__(self) -> str:
        return f"SealedStore({self._store}, {self._sealer!r})"

    def __eq__(self, value: object) -> bool:
        return (
            isinstance(value, SealedStore)
            and self._store == value._store
            and self._sealer.context == value._sealer.context
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The plaintext of the value at `key` (None when there is none)."""
        found = await self._store.get(key, prototype)
        if found is None:
            return None
        plain = self._sealer.open(key, found.to_bytes())
        return prototype.buffer.from_bytes(_sliced(plain, byte_range))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        """Parts of several values (each one opened whole: a sealed value has no parts)."""
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)

    def _sealed(self, key: str, value: Buffer) -> Buffer:
        return value.from_bytes(self._sealer.seal(key, value.to_bytes()))

    async def set(self, key: str, value: Buffer) -> None:
        """Seal `value` and store it at `key`."""
        await self._store.set(key, self._sealed(key, value))

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Seal and store `value` at `key` unless a value is there."""
        await self._store.set_if_not_exists(key, self._sealed(key, value))

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        for key, value in values:
            await self.set(key, value)


def open_group(
    path: Path, *, sealer: ValueSealer, mode: Literal["r", "w-", "r+"] = "r"
) -> Any:  # zarr's group type is loose
    """The Zarr group at `path` through its sealed store (`w-` creates it, Zarr format 2 as
    bio2zarr writes it)."""
    import zarr

    store = SealedStore(LocalStore(path, read_only=mode == "r"), sealer=sealer)
    if mode == "w-":
        return zarr.open_group(store=store, mode="w-", zarr_format=2)
    return zarr.open_group(store=store, mode=mode, zarr_format=2, use_consolidated=False)
