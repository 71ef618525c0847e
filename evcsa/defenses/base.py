"""The classifier interface every defense implements, and the plain model wrapper.

A defense is a classifier that wraps another classifier, with the same interface, so
defenses compose (a randomized squeezer around a model, a detector around that...).
Every classifier has:

- ``predict(x) -> labels``: LongTensor [B]; a rejecting defense returns :data:`REJECTED`.
- ``predict_proba(x)``: FloatTensor [B, K] where defined.
- ``surrogate_logits(x)``: differentiable scores [B, K] for attacks — one draw of the
  classifier's randomness, BPDA (identity backward) for non-differentiable squeezers.
- ``randomized``: whether two calls on the same input may differ.
- ``with_keys(keys)``: a twin with the same parameters and other randomness (whitebox
  knowledge): a new object whose every random draw comes from ``keys``. A deterministic
  classifier may return itself (the game hands the adversary a deep copy either way); a
  randomized one must implement it (the base raises NotImplementedError), and
  :func:`check_twin_contract` says what is wrong with a twin that shares the defense's keys
  or noise.
- ``model``: the undefended :class:`ModelClassifier` underneath (graybox knowledge).
- ``num_classes``, ``device``.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import threading
import warnings
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from evcsa._validation import as_images, check_positive_int
from evcsa.errors import InvalidParameter
from evcsa.judging import REJECTED
from evcsa.randomness import DerivedKeys, KeySource

__all__ = ["REJECTED", "Classifier", "Defense", "LogitsWarning", "ModelClassifier", "check_twin_contract",
           "eval_mode", "is_randomized", "key_sources_of", "undefended_model"]

# REJECTED, the label a rejecting defense (a detector) returns, is the judge's
# (evcsa.judging.REJECTED, defined once): never a class index, never a success.


class LogitsWarning(UserWarning):
    """A module's outputs look like probabilities (rows in [0, 1] summing to 1) rather than
    logits. Predictions are unaffected, but the attacks' losses (C&W margins, cross-entropy)
    and the squeezing detector's softmax assume logits: a final softmax layer flattens
    their gradients and silently weakens every attack (an attack that reads probabilities as
    logits; AutoAttack's pre-run checks warn of the same)."""


class Classifier(abc.ABC):
    """A (possibly randomized) image classifier: NCHW float32 images in [0, 1] → labels.

    Subclasses implement :meth:`predict` and usually :meth:`predict_proba` and
    :meth:`surrogate_logits`. Inputs are validated with :func:`evcsa._validation.as_images`
    and moved to :attr:`device`; outputs live on :attr:`device`.
    """

    #: Whether two calls on the same input may give different outputs.
    randomized: bool = False

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """Number of classes K; labels are in [0, K)."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """The device the underlying model runs on; inputs are moved there."""

    @property
    @abc.abstractmethod
    def model(self) -> ModelClassifier:
        """The undefended model underneath this classifier."""

    @abc.abstractmethod
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels for a batch.

        Args:
            x: float32 [B, C, H, W] in [0, 1] (numpy accepted), any device.

        Returns:
            int64 tensor [B] on :attr:`device`, values in [0, K) or :data:`REJECTED`.

        Raises:
            InvalidParameter: malformed ``x``.
        """

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities [B, K] (float32, rows sum to 1) for one draw of randomness.

        Raises:
            NotImplementedError: the classifier defines no probabilities.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no probabilities")

    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable scores [B, K] whose gradient attacks follow.

        One draw of the classifier's randomness; non-differentiable steps are replaced by
        their BPDA approximation (identity backward). No chunking, no ``no_grad``: the
        caller sizes the batch.

        Raises:
            NotImplementedError: the classifier offers no gradient path.
        """
        raise NotImplementedError(f"{type(self).__name__} offers no differentiable surrogate")

    def with_keys(self, keys: KeySource) -> Classifier:
        """A twin with the same parameters and randomness from ``keys`` (a KeySource).

        A deterministic classifier has no randomness and returns itself. A randomized one
        must override this: the twin must be a new object that draws every random choice
        from ``keys`` (never from this classifier's own key source), e.g.
        ``return MyDefense(self._twin_base(keys), ..., keys=keys)``.

        Raises:
            NotImplementedError: this classifier is randomized and does not override
                ``with_keys`` (returning ``self`` would hand the adversary the defense's
                own key source; evcsa < 0.next did so silently).
        """
        if is_randomized(self):
            raise NotImplementedError(
                f"{type(self).__name__} is randomized but does not implement with_keys(keys): implement "
                f"{type(self).__name__}.with_keys(keys) returning a new {type(self).__name__} that draws its "
                "randomness from keys (see docs/writing-a-defense.md)")
        return self


class ModelClassifier(Classifier):
    """A deterministic classifier around a ``torch.nn.Module`` that outputs logits.

    The module is put in eval mode. Forward passes run under ``torch.no_grad`` in chunks of
    ``batch_size`` images so memory stays bounded; inputs move to the module's device.

    Args:
        module: maps float32 [B, C, H, W] in [0, 1] to logits [B, K].
        num_classes: K; inferred from the first forward pass when None.
        batch_size: images per forward pass (default 512).

    Raises:
        InvalidParameter: ``module`` is not a ``torch.nn.Module``, or bad ``batch_size``.
    """

    randomized = False
    #: the model's provenance (its training configuration, test accuracy, weights' digest),
    #: set by :func:`evcsa.models.reference_model` only; absent on other instances.
    info: dict[str, Any]

    def __init__(self, module: torch.nn.Module, *, num_classes: int | None = None,
                 batch_size: int = 512) -> None:
        if not isinstance(module, torch.nn.Module):
            raise InvalidParameter(f"expected module as a torch.nn.Module, got {type(module).__name__}")
        self.module = module.eval()
        self._outputs_checked = False
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self._num_classes = None if num_classes is None else check_positive_int(num_classes, "num_classes", minimum=2)

    @property
    def num_classes(self) -> int:
        if self._num_classes is None:
            raise InvalidParameter("expected num_classes: pass it to ModelClassifier or classify once first")
        return self._num_classes

    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def model(self) -> ModelClassifier:
        return self

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, K] (float32, on :attr:`device`), chunked, without gradient."""
        x = as_images(x, device=self.device)
        outs = []
        with torch.no_grad(), eval_mode(self.module, lock=_MODE_LOCK):
            for chunk in x.split(self.batch_size):
                outs.append(self._forward(chunk))
                self._check_output(outs[-1], chunk.shape[0])
        return torch.cat(outs) if outs else torch.empty((0, self._num_classes or 0), device=self.device)

    def _forward(self, x: torch.Tensor) -> Any:
        """``module(x)``; a RuntimeError from the module (an input shape it cannot take) becomes
        InvalidParameter naming the shape, with a hint for channels-last images."""
        try:
            return self.module(x)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            shape = list(x.shape)
            hint = " (channels last? evcsa expects NCHW: x.permute(0, 3, 1, 2))" \
                if shape[1] not in (1, 3) and shape[-1] in (1, 3) else ""
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidParameter(f"expected images [B, C, H, W] that {type(self.module).__name__} accepts, got "
                                   f"shape {shape}{hint}: {first}", got=shape) from exc

    def _check_output(self, out: Any, b: int) -> None:
        """Logits must be a float [B, K] tensor with K ≥ 2 (and K as declared); the first
        time, warn (LogitsWarning) if they look like probabilities."""
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != b or out.shape[1] < 2 \
                or not out.is_floating_point():
            got = f"{tuple(out.shape)} {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidParameter(f"expected {type(self.module).__name__} to map {b} images to float logits "
                                   f"[{b}, K] with K ≥ 2, got {got}", got=got)
        if self._num_classes is not None and out.shape[1] != self._num_classes:
            raise InvalidParameter(f"expected logits with num_classes = {self._num_classes} columns, "
                                   f"got {out.shape[1]}", got=int(out.shape[1]))
        self._num_classes = int(out.shape[1])
        if not self._outputs_checked and out.numel():
            self._outputs_checked = True
            fractional = (out > 0) & (out < 1)  # logits such as (1, 0) are not evidence
            if bool(((out >= 0) & (out <= 1)).all()) and bool(((out.sum(1) - 1).abs() < 1e-4).all()) \
                    and bool(fractional.any()):
                warnings.warn(f"{type(self.module).__name__} outputs look like probabilities (rows in [0, 1] "
                              "summing to 1); evcsa expects logits: drop the final softmax, or the attacks' "
                              "gradients will be flattened", LogitsWarning, stacklevel=3)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(dim=1)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.logits(x), dim=1)

    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self._forward(x.to(self.device))
        if not self._outputs_checked:
            self._check_output(out.detach() if isinstance(out, torch.Tensor) else out, x.shape[0])
        return out

    def __repr__(self) -> str:
        return f"ModelClassifier({type(self.module).__name__})"


class Defense(Classifier):
    """Base of the defenses: a classifier wrapping another classifier ``base``.

    ``num_classes``, ``device`` and ``model`` come from ``base``.

    Raises:
        InvalidParameter: ``base`` is not a :class:`Classifier` (a bare ``nn.Module`` is
            wrapped in :class:`ModelClassifier` for you).
    """

    def __init__(self, base: Classifier | torch.nn.Module) -> None:
        if isinstance(base, torch.nn.Module):
            base = ModelClassifier(base)
        if not isinstance(base, Classifier):
            raise InvalidParameter(f"expected a Classifier or torch.nn.Module to defend, got {type(base).__name__}")
        self.base = base

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def model(self) -> ModelClassifier:
        return self.base.model

    def _twin_base(self, keys: KeySource) -> Classifier:
        """The base for a twin drawing from ``keys`` (a checked KeySource): a randomized base
        is twinned too, from ``keys.derive("base")``; a deterministic one is shared."""
        return self.base.with_keys(keys.derive("base")) if is_randomized(self.base) else self.base


#: held while eval_mode switches a module's flags and restores them
_MODE_LOCK = threading.RLock()


@contextlib.contextmanager
def eval_mode(*modules: torch.nn.Module, lock: threading.Lock | threading.RLock | None = None) -> Iterator[None]:
    """Run the block with every submodule of ``modules`` in eval mode, then restore each
    submodule's own train/eval flag: a classification never depends on, nor changes, the
    mode the user left the module in (dropout off, BatchNorm uses and keeps its running
    statistics). Costs nothing when every submodule is already in eval mode.

    Args:
        modules: torch modules.
        lock: held while the flags are switched and restored (a module shared by threads);
            default: one lock shared by all of evcsa.
    """
    training = [m for module in modules for m in module.modules() if m.training]
    if not training:
        yield
        return
    with lock if lock is not None else _MODE_LOCK:
        for m in training:
            m.training = False
        try:
            yield
        finally:
            for m in training:
                m.training = True


def reachable_objects(root: Any, kinds: tuple[type, ...], depth: int = 6) -> dict[int, Any]:
    """Objects of ``kinds`` reachable from ``root`` through attributes, lists, tuples and
    dicts (``depth`` levels; tensors and inside torch modules not searched), by id."""
    found: dict[int, Any] = {}
    seen: set[int] = set()
    stack = [(root, 0)]
    while stack:
        obj, level = stack.pop()
        if id(obj) in seen or isinstance(obj, (torch.Tensor, str, bytes, int, float, type)) or obj is None:
            continue
        seen.add(id(obj))
        if isinstance(obj, kinds):
            found[id(obj)] = obj
        if level >= depth or isinstance(obj, (torch.nn.Module, KeySource)):
            continue
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = list(obj)
        else:
            children = list(getattr(obj, "__dict__", {}).values())
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    children.append(getattr(obj, name))
        stack.extend((c, level + 1) for c in children)
    return found


def key_sources_of(classifier: Any) -> list[KeySource]:
    """The :class:`~evcsa.randomness.KeySource` objects a classifier holds (through its
    attributes, bases, wrappers; six levels deep), in a fixed order (depth first, in
    attribute order)."""
    return list(reachable_objects(classifier, (KeySource,)).values())


def is_randomized(classifier: Any) -> bool:
    """Whether ``classifier`` may answer differently on the same input — the one decision
    every part of evcsa uses (the game's twin rules, the draws of re-judging, the legitimate
    accuracy, the adversaries' EOT).

    Decided from what the object holds as well as from what it declares: a classifier that
    holds a :class:`~evcsa.randomness.KeySource` (anywhere in its attributes, a wrapped
    base's included) is randomized; one that declares ``randomized = False`` and holds none
    is deterministic; one that declares nothing (a plain object with ``predict``) is taken as
    randomized (the safe side: fresh draws, and a twin through ``with_keys``). The default
    is therefore True: only a declared ``randomized = False`` (every
    :class:`Classifier` that is not randomized declares it) makes a classifier deterministic.
    Every "is it randomized?" in evcsa calls this function (the game decides it once, when
    it wraps the classifier: ``EVCSA.randomized``).

    Args:
        classifier: any object with ``predict`` (an evcsa classifier or not).

    Returns:
        bool.

    Raises:
        InvalidParameter: it declares ``randomized = False`` yet holds a key source — a
            forgotten flag that would hand a whitebox adversary a copy of the defense's own
            keys and counter (the game copies a deterministic classifier as its twin).
    """
    declared = getattr(classifier, "randomized", None)
    holds = key_sources_of(classifier)
    if holds and declared is False:
        name = type(classifier).__name__
        raise InvalidParameter(f"expected {name} to declare randomized = True, since it holds a key source "
                               f"({holds[0]!r}), got randomized = False: declare it randomized and implement "
                               f"{name}.with_keys(keys) (see docs/writing-a-defense.md), or drop the key source",
                               got=name)
    return declared is not False


def modules_of(classifier: Any) -> list[torch.nn.Module]:
    """The torch modules a classifier holds (through its attributes, bases, wrappers)."""
    return list(reachable_objects(classifier, (torch.nn.Module,)).values())


def continuous_output(classifier: Any, x: torch.Tensor) -> torch.Tensor | None:
    """One continuous output of ``classifier`` on ``x`` (surrogate logits, else
    probabilities), or None when it offers neither."""
    for name in ("surrogate_logits", "predict_proba"):
        method = getattr(classifier, name, None)
        if not callable(method):
            continue
        try:
            with torch.no_grad():
                out = method(x)
        except NotImplementedError:
            continue
        if isinstance(out, torch.Tensor):
            return out.detach().cpu()
    return None


def check_twin_contract(classifier: Any, probe: torch.Tensor | None = None) -> None:
    """Check that a randomized classifier's whitebox twin cannot predict its noise.

    The twin contract (the whitebox knowledge of seed 000 Fig. 1: the defense's parameters,
    never its randomness): ``classifier.with_keys(keys)`` returns (1) a
    distinct object, (2) holding none of the classifier's key sources, (3) whose draws
    are not the classifier's draws. Does nothing for a classifier whose ``randomized`` is
    False. Makes one twin from fixed probe keys and, with ``probe``, draws once from the
    twin and twice from the classifier (consuming two of the classifier's keys).

    Args:
        classifier: an evcsa classifier (or anything with ``predict`` and ``with_keys``).
        probe: float32 [B, C, H, W] in [0, 1], a few natural images; None skips (3).

    Raises:
        InvalidParameter: the message names the class, which part of the contract fails
            and what to implement.
    """
    if not is_randomized(classifier):
        return
    name = type(classifier).__name__
    hint = (f"implement {name}.with_keys(keys) returning a new {name} whose every random draw comes from "
            "keys (see docs/writing-a-defense.md)")
    with_keys = getattr(classifier, "with_keys", None)
    if not callable(with_keys):
        raise InvalidParameter(f"expected a randomized classifier with with_keys(keys) for the whitebox twin, got "
                               f"{name} without it: {hint}", got=name)
    try:
        # fixed probe keys: the check is reproducible and its draws never touch the game's keys
        twin = with_keys(DerivedKeys(bytes(32), "evcsa/twin-contract"))
    except NotImplementedError as exc:
        raise InvalidParameter(f"expected {name}.with_keys(keys) to make a twin, got NotImplementedError: {hint}",
                               got=name) from exc
    if twin is classifier:
        raise InvalidParameter(f"expected {name}.with_keys(keys) to return a distinct twin, got the classifier "
                               f"itself (the adversary would hold the defense's own key source): {hint}", got=name)
    own = reachable_objects(classifier, (KeySource,))
    shared = [k for i, k in reachable_objects(twin, (KeySource,)).items() if i in own]
    if shared:
        raise InvalidParameter(f"expected {name}.with_keys(keys) to give a twin with its own keys, got a twin "
                               f"sharing the classifier's key source {shared[0]!r}: {hint}", got=name)
    if probe is None:
        return
    try:  # draw from a copy, as the adversary does: the check leaves the shared base untouched
        twin = copy.deepcopy(twin)
    except Exception:  # noqa: BLE001 - an uncopyable twin is checked in place
        pass
    first = continuous_output(twin, probe)
    if first is None:
        return
    theirs = continuous_output(classifier, probe)
    again = continuous_output(classifier, probe)
    if theirs is not None and again is not None and not torch.equal(theirs, again) and torch.equal(first, theirs):
        raise InvalidParameter(f"expected {name}.with_keys(keys) to give a twin with other noise, got a twin whose "
                               f"draw equals the classifier's next draw (a copied or fixed key stream): {hint}",
                               got=name)


def undefended_model(classifier: Any) -> ModelClassifier | None:
    """The undefended :class:`ModelClassifier` under ``classifier``, or None if it has none."""
    model = getattr(classifier, "model", None)
    return model if isinstance(model, ModelClassifier) else None
