"""Keyed noise for randomized defenses: one key from a :class:`~evcsa.keys.KeySource`
expanded with AES-CTR into as many values as a batch needs.

Keyed noise (:func:`keyed_uniform`, :func:`keyed_integers`) expands one key with
AES-CTR into as many values as a batch needs. The layout and the bytes → number mapping
are fixed and documented below, so the noise is a pure function of (key, nonce, item
index) and does not depend on how a batch is chunked.

The key sources themselves (:class:`SystemKeys`, :class:`DerivedKeys`, :class:`MasterKey`)
live in :mod:`evcsa.keys`, torch-free, and are re-exported here, where they have always been
named.

Seed 000 § 4.3 / seed 002 § 4.2: "it is crucial for security that the random noise be
generated from a high-entropy key to seed the underlying cryptographic pseudo-random
generator".
"""

from __future__ import annotations

import math
import sys
from typing import Sequence

import numpy as np
import torch
from Crypto.Cipher import AES

from evcsa._values import check_delta
from evcsa.errors import KeyStreamError
from evcsa.keys import KEY_BYTES, MASTER_KEY_BYTES, DerivedKeys, KeySource, MasterKey, SystemKeys, default_keys

__all__ = [
    "BLOCK_BYTES",
    "INTEGER_NONCE",
    "KEY_BYTES",
    "NOISE_NONCE",
    "DerivedKeys",
    "KeySource",
    "MASTER_KEY_BYTES",
    "MasterKey",
    "SystemKeys",
    "default_keys",
    "keyed_integers",
    "keyed_uniform",
    "keystream_words",
    "words_to_integers",
    "words_to_uniform",
]


# ---------------------------------------------------------------------------------------
# Keyed noise: AES-CTR keystream → 32-bit words → numbers
# ---------------------------------------------------------------------------------------

#: AES block size in bytes: one counter value gives 16 keystream bytes (4 words).
BLOCK_BYTES = 16
_WORDS_PER_BLOCK = BLOCK_BYTES // 4
#: Default nonce of :func:`keyed_uniform` (8 bytes, leaving a 64-bit block counter).
NOISE_NONCE = b"evcsa:nz"
#: Default nonce of :func:`keyed_integers` (8 bytes), so that integers and noise drawn
#: with the same key never share keystream.
INTEGER_NONCE = b"evcsa:ix"
_AES_KEY_BYTES = (16, 24, 32)


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) not in _AES_KEY_BYTES:
        got = f"{len(key)} bytes" if isinstance(key, (bytes, bytearray)) else type(key).__name__
        raise KeyStreamError(f"expected an AES key of 16, 24 or 32 bytes, got {got}", got=got)
    return bytes(key)


def _check_nonce(nonce: bytes) -> bytes:
    if not isinstance(nonce, (bytes, bytearray)) or not 0 <= len(nonce) < BLOCK_BYTES:
        got = f"{len(nonce)} bytes" if isinstance(nonce, (bytes, bytearray)) else type(nonce).__name__
        raise KeyStreamError(f"expected a nonce of 0 to {BLOCK_BYTES - 1} bytes, got {got}", got=got)
    return bytes(nonce)


def _item_count(shape: Sequence[int] | int, name: str) -> tuple[tuple[int, ...], int, int]:
    """(shape, n_items, values_per_item) for a request of ``shape`` = (n_items, *item_shape)."""
    try:
        if isinstance(shape, (str, bytes, int)):  # an int is no shape (it does not iterate)
            raise TypeError
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise KeyStreamError(f"expected {name} as a tuple of sizes, got {shape!r}", got=shape) from None
    if len(shape) == 0 or any(d < 0 for d in shape):
        raise KeyStreamError(f"expected {name} as non-negative sizes (n_items, ...), got {shape}", got=shape)
    return shape, shape[0], math.prod(shape[1:])


def keystream_words(key: bytes, n_items: int, words_per_item: int, *, nonce: bytes = NOISE_NONCE,
                    first_item: int = 0) -> np.ndarray:
    """The AES-CTR keystream of ``key`` as 32-bit words, laid out item by item.

    Item ``i`` (counting from ``first_item``) owns the counter blocks
    ``[i·b, (i + 1)·b)`` with ``b = ⌈words_per_item / 4⌉``: every item starts at its own
    counter offset, so the words of item i do not depend on which other items are drawn
    with it (chunking a batch never changes the noise), and no two items share keystream.
    A word is 4 keystream bytes read little-endian.

    Args:
        key: the AES key, 16, 24 or 32 bytes.
        n_items: number of items ≥ 0.
        words_per_item: words per item ≥ 0.
        nonce: the fixed counter-block prefix, 0 to 15 bytes; the remaining
            ``16 − len(nonce)`` bytes are the big-endian block counter.
        first_item: index of the first item drawn ≥ 0.

    Returns:
        writable int32 numpy array [n_items, words_per_item] (the words' bit patterns
        reinterpreted as signed).

    Raises:
        KeyStreamError: a key or nonce of the wrong length, negative sizes, or a request
            that would run the block counter past its end (2^(8·(16 − len(nonce))) blocks);
            nothing is truncated or wrapped.
    """
    key, nonce = _check_key(key), _check_nonce(nonce)
    for name, value in (("n_items", n_items), ("words_per_item", words_per_item), ("first_item", first_item)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise KeyStreamError(f"expected {name} as an integer ≥ 0, got {value!r}", got=value)
    n_items, words_per_item, first_item = int(n_items), int(words_per_item), int(first_item)
    blocks_per_item = -(-words_per_item // _WORDS_PER_BLOCK)
    first_block = first_item * blocks_per_item
    n_blocks = n_items * blocks_per_item
    counter_end = 1 << (8 * (BLOCK_BYTES - len(nonce)))
    if first_block + n_blocks > counter_end:
        raise KeyStreamError(
            f"expected a keystream request within the {counter_end} counter blocks of a "
            f"{len(nonce)}-byte nonce, got blocks [{first_block}, {first_block + n_blocks})",
            first_block=first_block, blocks=n_blocks, counter_end=counter_end)
    stride = blocks_per_item * _WORDS_PER_BLOCK
    buf = bytearray(n_blocks * BLOCK_BYTES)  # zero-filled: encrypting zeros yields the keystream
    if n_blocks:
        cipher = AES.new(key, AES.MODE_CTR, nonce=nonce, initial_value=first_block)
        view = memoryview(buf)
        cipher.encrypt(view, output=view)
    words = np.frombuffer(buf, dtype="<i4").reshape(n_items, stride)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        words = words.astype(np.int32)
    if stride != words_per_item:
        words = np.ascontiguousarray(words[:, :words_per_item])
    return words


def _largest_float32_at_most(value: float) -> np.float32:
    v = np.float32(value)
    if float(v) > value:
        v = np.nextafter(v, np.float32(0))
    return v


def words_to_uniform(words: np.ndarray, delta: float) -> torch.Tensor:
    """Map keystream words to float32 noise uniform on 2²⁴ points symmetric in [−δ, δ].

    The mapping: read the word as a signed 32-bit integer s; take its top 24 bits and make
    the odd integer m = (s >> 7) | 1 ∈ {−2²⁴ + 1, −2²⁴ + 3, …, 2²⁴ − 1}; return
    m · (δ′ · 2⁻²⁴) in float32, where δ′ is the largest float32 ≤ δ. Each of the 2²⁴ values is
    equally likely, the set is symmetric about 0 (mean exactly 0), the step is 2δ′/2²⁴, and
    every value lies in (−δ, δ) (|m| < 2²⁴ and float32 rounding is monotone).

    Args:
        words: int32 numpy array (any shape); overwritten (used as scratch).
        delta: δ ≥ 0, the noise magnitude on the [0, 1] pixel scale.

    Returns:
        float32 CPU tensor of the shape of ``words``.
    """
    np.right_shift(words, 7, out=words)
    np.bitwise_or(words, 1, out=words)
    out = words.astype(np.float32)
    out *= np.float32(_largest_float32_at_most(float(delta)) * np.float32(2.0 ** -24))
    return torch.from_numpy(out)


def words_to_integers(words: np.ndarray, high: int) -> torch.Tensor:
    """Map keystream words to integers in [0, high) by multiply-shift: ⌊u · high / 2³²⌋,
    u the word as unsigned. The bias is below high / 2³² per value (no rejection sampling).

    Returns:
        int64 CPU tensor of the shape of ``words``.
    """
    if isinstance(high, bool) or not isinstance(high, (int, np.integer)) or not 1 <= high <= 2**31:
        raise KeyStreamError(f"expected high as an integer in [1, 2**31], got {high!r}", got=high)
    u = words.view(np.uint32).astype(np.uint64)
    return torch.from_numpy(((u * np.uint64(high)) >> np.uint64(32)).astype(np.int64))


def keyed_uniform(key: bytes, shape: Sequence[int], delta: float, *, nonce: bytes = NOISE_NONCE,
                  first_item: int = 0) -> torch.Tensor:
    """Noise uniform in [−δ, δ] from the AES-CTR keystream of ``key``.

    ``shape = (n_items, *item_shape)``: item ``first_item + i`` (an image, or one sample of
    an ensemble) gets its own counter offset (:func:`keystream_words`), one word per value,
    mapped by :func:`words_to_uniform`. The same (key, nonce, item index) always gives the
    same values; use each key for one classification only.

    Args:
        key: 16, 24 or 32 bytes, fresh per classification call (from a :class:`KeySource`).
        shape: (n_items, *item_shape), e.g. (B, C, H, W).
        delta: δ in [0, 1].
        nonce: counter-block prefix (0–15 bytes); default :data:`NOISE_NONCE`.
        first_item: index of the first item (to draw a batch in chunks).

    Returns:
        float32 CPU tensor of ``shape``, values in [−δ, δ].

    Raises:
        KeyStreamError: bad key, nonce, sizes or δ, or a counter overrun.
    """
    delta = check_delta(delta, error=KeyStreamError)
    shape, n_items, per_item = _item_count(shape, "shape")
    words = keystream_words(key, n_items, per_item, nonce=nonce, first_item=first_item)
    return words_to_uniform(words, delta).reshape(shape)


def keyed_integers(key: bytes, shape: Sequence[int], high: int, *, nonce: bytes = INTEGER_NONCE,
                   first_item: int = 0) -> torch.Tensor:
    """Integers uniform in [0, high) (multiply-shift, bias < high/2³²) from the AES-CTR
    keystream of ``key``, laid out item by item as :func:`keyed_uniform`.

    Returns:
        int64 CPU tensor of ``shape`` = (n_items, *item_shape).

    Raises:
        KeyStreamError: bad key, nonce, sizes or ``high``, or a counter overrun.
    """
    shape, n_items, per_item = _item_count(shape, "shape")
    words = keystream_words(key, n_items, per_item, nonce=nonce, first_item=first_item)
    return words_to_integers(words, high).reshape(shape)
