"""Key sources for randomized defenses, and keyed noise.

A randomized defense never draws from a seeded non-cryptographic generator: each
classification takes a fresh key from a :class:`KeySource` and expands it with a stream
cipher (pycryptodome). Two sources ship:

- :class:`SystemKeys` (the default): keys from the operating system's entropy; secure,
  never repeats, not reproducible.
- :class:`DerivedKeys`: keys derived from a master key and a counter with HKDF-SHA256;
  the same master key gives the same keys in the same order (reproducible experiments),
  and :meth:`DerivedKeys.derive` splits off independent streams (the adversary's own keys
  for a whitebox twin, say) that never collide with the parent's.

Seed 000 § 4.3 / seed 002 § 4.2: "it is crucial for security that the random noise be
generated from a high-entropy key to seed the underlying cryptographic pseudo-random
generator".
"""

from __future__ import annotations

import abc
import threading

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from Crypto.Random import get_random_bytes

from evcsa.errors import KeyStreamError

__all__ = ["KEY_BYTES", "DerivedKeys", "KeySource", "SystemKeys", "default_keys"]

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


class DerivedKeys(KeySource):
    """Keys derived from a master key, for reproducible experiments.

    Key i of the source labelled ``label`` is HKDF-SHA256(master_key, salt=b"evcsa",
    context=label ‖ 0x00 ‖ i as 8 bytes big-endian), ``KEY_BYTES`` long. Re-creating a
    source with the same master key and label gives the same keys in the same order;
    different labels give independent streams.

    Args:
        master_key: 16 or 32 bytes (an ``int`` seed is not accepted: a master key is a
            secret, derive it with ``DerivedKeys.from_seed`` for experiments).
        label: the stream's name; default "defense".

    Raises:
        KeyStreamError: a master key of another length or type, or a counter past 2⁶⁴ − 1.
    """

    def __init__(self, master_key: bytes, label: str = "defense") -> None:
        if not isinstance(master_key, (bytes, bytearray)) or len(master_key) not in (16, 32):
            got = len(master_key) if isinstance(master_key, (bytes, bytearray)) else type(master_key).__name__
            raise KeyStreamError(f"expected a master key of 16 or 32 bytes, got {got}", got=got)
        if not isinstance(label, str):
            raise KeyStreamError(f"expected label as a string, got {label!r}", got=label)
        self._master = bytes(master_key)
        self.label = label
        self._counter = 0
        self._lock = threading.Lock()

    @classmethod
    def from_seed(cls, seed: int, label: str = "defense") -> DerivedKeys:
        """A source whose master key is SHA-256 of the decimal ``seed`` (experiments only:
        anyone who knows the seed knows every key)."""
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
        context = self.label.encode() + b"\x00" + i.to_bytes(8, "big")
        return HKDF(self._master, KEY_BYTES, b"evcsa", SHA256, context=context)

    def derive(self, label: str) -> DerivedKeys:
        return DerivedKeys(self._master, f"{self.label}/{label}")

    def __repr__(self) -> str:
        return f"DerivedKeys(label={self.label!r}, keys_issued={self._counter})"


def default_keys() -> KeySource:
    """The default key source: :class:`SystemKeys` (OS entropy)."""
    return SystemKeys()
