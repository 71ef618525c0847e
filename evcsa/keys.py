"""Key sources for randomized defenses: where every key a defense draws comes from (torch-free;
the keyed noise that expands a key is :mod:`evcsa.randomness`).

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

Seed 000 § 4.3 / seed 002 § 4.2: "it is crucial for security that the random noise be
generated from a high-entropy key to seed the underlying cryptographic pseudo-random
generator".
"""

from __future__ import annotations

import abc
import threading
from typing import Any

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from Crypto.Random import get_random_bytes

from evcsa.errors import KeyStreamError

__all__ = ["KEY_BYTES", "MASTER_KEY_BYTES", "DerivedKeys", "KeySource", "MasterKey", "SystemKeys", "default_keys"]

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
