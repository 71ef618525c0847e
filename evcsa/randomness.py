"""Key sources for randomized defenses, and keyed noise.

A randomized defense never draws from a seeded non-cryptographic generator: each
classification takes a fresh key from a :class:`KeySource` and expands it with a stream
cipher (pycryptodome). Two sources ship:

- :class:`SystemKeys` (the default): keys from the operating system's entropy; secure,
  never repeats, not reproducible.
- :class:`DerivedKeys`: keys derived from a 256-bit :class:`MasterKey` and a counter with
  HKDF-SHA256; the same master key gives the same keys in the same order (reproducible
  experiments), and :meth:`DerivedKeys.derive` splits off independent streams (the
  adversary's own keys for a whitebox twin, say) that never collide with the parent's.

What each mode guarantees:

- **OS entropy** (:class:`SystemKeys`): every key is fresh OS randomness. Nobody, the
  adversary included, can predict a key; nothing is reproducible.
- **Reproducible** (:class:`DerivedKeys` from a :class:`MasterKey`): every key is a
  function of the 256-bit master key and the stream's label path, so a rerun with the same
  master key reproduces every key, noise draw and number. The master key is drawn from OS
  entropy on first use (:meth:`MasterKey.generate`) or given by the user, and is recorded
  with the results (it is *not* secret from whoever reads them: publish results only after
  the games are played). The adversary never receives it nor anything computed from it:
  its generator and key source are seeded separately (the public experiment seed), so
  brute-forcing a small seed gains nothing about the defense's keys.
- Tests and examples only: :meth:`DerivedKeys.from_seed` makes the master key SHA-256 of
  a small integer — anyone who knows or guesses the integer knows every key.

Keyed noise (:func:`keyed_uniform`, :func:`keyed_integers`) expands one key with
AES-CTR into as many values as a batch needs. The layout and the bytes → number mapping
are fixed and documented below, so the noise is a pure function of (key, nonce, item
index) and does not depend on how a batch is chunked.

Seed 000 § 4.3 / seed 002 § 4.2: "it is crucial for security that the random noise be
generated from a high-entropy key to seed the underlying cryptographic pseudo-random
generator".
"""

from __future__ import annotations

import abc
import math
import sys
import threading
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from Crypto.Random import get_random_bytes

from evcsa.errors import KeyStreamError

if TYPE_CHECKING:  # torch loads only when noise is drawn: importing key sources stays light
    import torch

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

#: Length of the keys a :class:`KeySource` hands out: 16 bytes (AES-128).
KEY_BYTES = 16


class KeySource(abc.ABC):
    """Where a randomized defense gets a fresh key for each classification call.

    Implementations return ``KEY_BYTES`` bytes from :meth:`next_key`, never the same key
    twice (up to the cipher's collision bounds).
    """

    @abc.abstractmethod
    def next_key(self) -> bytes:
        """A fresh key of ``KEY_BYTES`` bytes."""

    @abc.abstractmethod
    def derive(self, label: str) -> KeySource:
        """An independent key source named ``label`` (for a twin or the adversary).

        Keys of the derived source never equal the parent's. For :class:`SystemKeys` the
        derived source is simply another entropy source.
        """


class SystemKeys(KeySource):
    """Keys from the operating system's entropy (``Crypto.Random.get_random_bytes``).

    The default and the secure choice: keys are unpredictable, so noise cannot be learnt.
    Not reproducible by design.
    """

    def next_key(self) -> bytes:
        return get_random_bytes(KEY_BYTES)

    def derive(self, label: str) -> SystemKeys:
        return SystemKeys()

    def __repr__(self) -> str:
        return "SystemKeys()"


#: Length of a master key: 32 bytes (256 bits).
MASTER_KEY_BYTES = 32


class MasterKey:
    """A 256-bit secret from which every key of a reproducible experiment derives.

    Make one with :meth:`generate` (OS entropy) or :meth:`from_hex` (a recorded key);
    :meth:`hex` gives the 64 hex digits to record with the results. Its ``repr`` never
    shows the key.

    Args:
        key: 32 bytes.

    Raises:
        KeyStreamError: anything but 32 bytes.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != MASTER_KEY_BYTES:
            got = f"{len(key)} bytes" if isinstance(key, (bytes, bytearray)) else type(key).__name__
            raise KeyStreamError(f"expected a master key of {MASTER_KEY_BYTES} bytes (256 bits), got {got}", got=got)
        self._key = bytes(key)

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh master key from the operating system's entropy."""
        return cls(get_random_bytes(MASTER_KEY_BYTES))

    @classmethod
    def from_hex(cls, text: str) -> MasterKey:
        """The master key written as 64 hex digits (as :meth:`hex` gives it).

        Raises:
            KeyStreamError: not a string of 64 hex digits.
        """
        if not isinstance(text, str):
            raise KeyStreamError(f"expected a master key as 64 hex digits, got {type(text).__name__}",
                                 got=type(text).__name__)
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            raise KeyStreamError(f"expected a master key as 64 hex digits, got {len(text.strip())} characters "
                                 "that are not all hex digits", got=len(text)) from None
        if len(raw) != MASTER_KEY_BYTES:
            raise KeyStreamError(f"expected a master key as 64 hex digits, got {2 * len(raw)}", got=2 * len(raw))
        return cls(raw)

    @property
    def bytes(self) -> bytes:
        """The 32 key bytes."""
        return self._key

    def hex(self) -> str:
        """The key as 64 lowercase hex digits (to record with the results)."""
        return self._key.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MasterKey) and other._key == self._key

    def __hash__(self) -> int:
        return hash(("MasterKey", self._key))

    def __repr__(self) -> str:
        return "MasterKey(<256-bit secret>)"

    def __reduce__(self) -> Any:
        return (MasterKey, (self._key,))


def _encode_path(path: tuple[str, ...]) -> bytes:
    """The label path as bytes, unambiguously: each label as its UTF-8 length (4 bytes
    big-endian) then its bytes. So ("a/b", "c") and ("a", "b/c") never share keys."""
    out = bytearray()
    for label in path:
        raw = label.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


class DerivedKeys(KeySource):
    """Keys derived from a master key, for reproducible experiments.

    A source is named by its label path (``label``, then one label per :meth:`derive`).
    Key i is HKDF-SHA256(master_key, salt=b"evcsa/2", context=encode(path) ‖ i as 8 bytes
    big-endian), ``KEY_BYTES`` long, where encode writes each label length-prefixed
    (:func:`_encode_path`): two different paths never give the same keys, whatever "/"
    their labels contain. Re-creating a source with the same master key and path gives
    the same keys in the same order.

    Args:
        master_key: a :class:`MasterKey` (256 bits); raw bytes of 32 (or, for old
            callers, 16) are accepted too. An ``int`` seed is not accepted: a master key
            is a secret.
        label: the stream's name; default "defense".

    Raises:
        KeyStreamError: a master key of another length or type, a label that is not a
            string, or a counter past 2⁶⁴ − 1.
    """

    def __init__(self, master_key: MasterKey | bytes, label: str = "defense", *,
                 _path: tuple[str, ...] | None = None) -> None:
        if isinstance(master_key, MasterKey):
            master_key = master_key.bytes
        if not isinstance(master_key, (bytes, bytearray)) or len(master_key) not in (16, 32):
            got = len(master_key) if isinstance(master_key, (bytes, bytearray)) else type(master_key).__name__
            raise KeyStreamError(f"expected a master key of 16 or 32 bytes, got {got}", got=got)
        if not isinstance(label, str):
            raise KeyStreamError(f"expected label as a string, got {label!r}", got=label)
        self._master = bytes(master_key)
        self.path: tuple[str, ...] = (label,) if _path is None else _path
        self.label = "/".join(self.path)  # for display only; keys use the encoded path
        self._context = _encode_path(self.path)
        self._counter = 0
        self._lock = threading.Lock()

    @classmethod
    def from_seed(cls, seed: int, label: str = "defense") -> DerivedKeys:
        """A source whose master key is SHA-256 of the decimal ``seed``: for tests and
        examples only, never for an evaluation.

        Not secret: anyone who knows or guesses the seed knows every key (a small seed is
        brute-forced in a second). For reproducible evaluations use
        ``DerivedKeys(MasterKey.generate(), label)`` and record ``master_key.hex()``.
        """
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise KeyStreamError(f"expected seed as an integer ≥ 0, got {seed!r}", got=seed)
        return cls(SHA256.new(str(seed).encode()).digest(), label)

    @property
    def keys_issued(self) -> int:
        """How many keys this source has handed out."""
        return self._counter

    def next_key(self) -> bytes:
        with self._lock:
            i = self._counter
            if i >= 2**64:
                raise KeyStreamError("expected fewer than 2**64 keys from one DerivedKeys source, "
                                     "got a request past the counter's end", counter=i)
            self._counter = i + 1
        return HKDF(self._master, KEY_BYTES, b"evcsa/2", SHA256, context=self._context + i.to_bytes(8, "big"))

    def derive(self, label: str) -> DerivedKeys:
        if not isinstance(label, str):
            raise KeyStreamError(f"expected label as a string, got {label!r}", got=label)
        return DerivedKeys(self._master, _path=(*self.path, label))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DerivedKeys(label={self.label!r}, keys_issued={self._counter})"


def default_keys() -> KeySource:
    """The default key source: :class:`SystemKeys` (OS entropy)."""
    return SystemKeys()


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
    import torch

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
    import torch

    if isinstance(high, bool) or not isinstance(high, (int, np.integer)) or not 1 <= high <= 2**31:
        raise KeyStreamError(f"expected high as an integer in [1, 2**31], got {high!r}", got=high)
    u = words.view(np.uint32).astype(np.uint64)
    return torch.from_numpy(((u * np.uint64(high)) >> np.uint64(32)).astype(np.int64))


def _check_delta(delta: float) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.integer, np.floating)) \
            or not (0.0 <= float(delta) <= 1.0):
        raise KeyStreamError(f"expected delta as a number in [0, 1], got {delta!r}", got=delta)
    return float(delta)


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
    delta = _check_delta(delta)
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
