"""Key sources and keyed noise (evcsa.randomness)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from Crypto.Cipher import AES

from evcsa.errors import KeyStreamError
from evcsa.randomness import (
    INTEGER_NONCE,
    NOISE_NONCE,
    DerivedKeys,
    SystemKeys,
    keyed_integers,
    keyed_uniform,
    keystream_words,
    words_to_integers,
    words_to_uniform,
)

KEY = bytes(range(16))


# -- key sources ----------------------------------------------------------------------
def test_derived_keys_reproducible_and_distinct():
    a, b = DerivedKeys(b"m" * 16), DerivedKeys(b"m" * 16)
    ka = [a.next_key() for _ in range(5)]
    assert ka == [b.next_key() for _ in range(5)]
    assert len(set(ka)) == 5 and all(len(k) == 16 for k in ka)
    assert a.keys_issued == 5
    child = DerivedKeys(b"m" * 16).derive("twin")
    assert child.next_key() not in ka
    assert DerivedKeys(b"m" * 16, "other").next_key() != ka[0]


def test_system_keys_fresh():
    s = SystemKeys()
    assert s.next_key() != s.next_key()
    assert isinstance(s.derive("x"), SystemKeys)


@pytest.mark.parametrize("master, match", [(b"short", "16 or 32 bytes"), ("0" * 16, "16 or 32 bytes")])
def test_derived_keys_reject_bad_master(master, match):
    with pytest.raises(KeyStreamError, match=match):
        DerivedKeys(master)


def test_derived_keys_from_seed_rejects_negative():
    with pytest.raises(KeyStreamError, match="seed as an integer"):
        DerivedKeys.from_seed(-1)


# -- keystream layout -----------------------------------------------------------------
def test_keystream_words_is_documented_aes_ctr_layout():
    """Item i starts at counter block i·⌈words/4⌉ of AES-CTR(key, nonce); words read
    little-endian; padding words at the end of an item are never used by another item."""
    words = keystream_words(KEY, 3, 5, nonce=NOISE_NONCE, first_item=2)  # 5 words → 2 blocks/item
    cipher = AES.new(KEY, AES.MODE_CTR, nonce=NOISE_NONCE, initial_value=2 * 2)
    raw = np.frombuffer(cipher.encrypt(bytes(3 * 2 * 16)), dtype="<i4").reshape(3, 8)
    np.testing.assert_array_equal(words, raw[:, :5])


def test_chunking_never_changes_noise():
    full = keyed_uniform(KEY, (10, 1, 3, 3), 0.2)
    parts = torch.cat([keyed_uniform(KEY, (4, 1, 3, 3), 0.2, first_item=0),
                       keyed_uniform(KEY, (6, 1, 3, 3), 0.2, first_item=4)])
    assert torch.equal(full, parts)


def test_items_never_share_keystream():
    """Distinct items, keys and nonces give distinct words (collision probability 2^-32 per
    pair of 4-byte words is far below anything this could hit: 0 false failures)."""
    w = keystream_words(KEY, 4, 784)
    assert len({row.tobytes() for row in w}) == 4
    other_nonce = keystream_words(KEY, 1, 784, nonce=INTEGER_NONCE)
    assert not np.array_equal(w[0], other_nonce[0])
    assert not np.array_equal(w[0], keystream_words(bytes(16), 1, 784)[0])


# -- bytes → numbers --------------------------------------------------------------------
def test_words_to_uniform_mapping_exact():
    """m = (s >> 7) | 1 (odd, |m| < 2^24), value = m · δ′ · 2^-24 in float32."""
    words = np.array([0, -1, 2**31 - 1, -(2**31), 128, 255], dtype=np.int32)
    got = words_to_uniform(words.copy(), 0.5).numpy()
    m = np.array([(int(s) >> 7) | 1 for s in words], dtype=np.float64)
    np.testing.assert_array_equal(m, [1, -1, 2**24 - 1, -(2**24) + 1, 1, 1])
    np.testing.assert_array_equal(got, (m * 0.5 * 2.0**-24).astype(np.float32))
    assert got.dtype == np.float32


@pytest.mark.parametrize("delta", [0.0, 0.05, 0.1, 0.3, 1.0])
def test_uniform_values_within_delta(delta):
    """C04: every noise value lies in [−δ, δ] (also against δ as a Python float)."""
    noise = keyed_uniform(KEY, (200, 1, 28, 28), delta).double()
    assert float(noise.abs().max()) <= delta
    if delta:
        # uniform: mean ~0 (sd δ/√3/√156800 ≈ 0.0015δ), spread close to ±δ
        assert abs(float(noise.mean())) < 0.01 * delta
        assert float(noise.max()) > 0.999 * delta and float(noise.min()) < -0.999 * delta


def test_uniform_extremes_are_symmetric():
    w = np.array([2**31 - 1, -(2**31)], dtype=np.int32)
    lo_hi = words_to_uniform(w, 0.1).numpy()
    assert lo_hi[0] == -lo_hi[1] and 0 < lo_hi[0] <= np.float32(0.1)


def test_integers_in_range_and_cover():
    ints = keyed_integers(KEY, (1000, 3), 7)
    assert ints.dtype == torch.int64 and int(ints.min()) == 0 and int(ints.max()) == 6
    assert words_to_integers(np.array([-1], dtype=np.int32), 5).item() == 4  # u = 2^32 − 1


# -- errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", [b"", b"x" * 15, b"x" * 17, "x" * 16, None])
def test_bad_key_length_raises(key):
    with pytest.raises(KeyStreamError, match="AES key of 16, 24 or 32 bytes"):
        keyed_uniform(key, (1, 4), 0.1)


@pytest.mark.parametrize("nonce", [b"x" * 16, b"x" * 20, "nonce"])
def test_bad_nonce_length_raises(nonce):
    with pytest.raises(KeyStreamError, match="nonce of 0 to 15 bytes"):
        keyed_uniform(KEY, (1, 4), 0.1, nonce=nonce)


def test_counter_overrun_raises_not_wraps():
    """C04: a 15-byte nonce leaves a 1-byte counter: 256 blocks = 1024 words, no more."""
    nonce = b"n" * 15
    assert keyed_uniform(KEY, (256, 4), 0.1, nonce=nonce).shape == (256, 4)
    with pytest.raises(KeyStreamError, match="within the 256 counter blocks"):
        keyed_uniform(KEY, (257, 4), 0.1, nonce=nonce)
    with pytest.raises(KeyStreamError, match=r"got blocks \[255, 257\)"):
        keyed_uniform(KEY, (2, 4), 0.1, nonce=nonce, first_item=255)
    with pytest.raises(KeyStreamError, match="counter blocks"):
        keyed_uniform(KEY, (1, 4), 0.1, first_item=2**64)


@pytest.mark.parametrize("kwargs, match", [
    (dict(shape=(2, 3), delta=1.5), r"expected delta in \[0, 1\]"),
    (dict(shape=(2, 3), delta=-0.1), r"expected delta in \[0, 1\]"),
    (dict(shape=(-1, 3), delta=0.1), "non-negative sizes"),
    (dict(shape=5, delta=0.1), "tuple of sizes"),
    (dict(shape=(2, 3), delta=0.1, first_item=-1), "first_item as an integer"),
])
def test_bad_requests_raise(kwargs, match):
    with pytest.raises(KeyStreamError, match=match):
        keyed_uniform(KEY, **kwargs)


def test_bad_integer_bound_raises():
    with pytest.raises(KeyStreamError, match="high as an integer"):
        keyed_integers(KEY, (2, 2), 0)


def test_key_sources_import_without_torch():
    """The key sources (evcsa.keys) stay light: torch loads with the noise (evcsa.randomness),
    not with the keys a configuration records."""
    import subprocess
    import sys

    code = "import sys, evcsa.keys; print('torch' in sys.modules)"
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"
