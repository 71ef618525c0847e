"""What the adversary is given (seed 000 Fig. 1 line 3): :class:`Knowledge`, its private
copies of the game's model and twin, and the checks that the adversary left the model it
was given unchanged (:class:`~evcsa.errors.ModelTampered`)."""

from __future__ import annotations

import copy
from typing import Any, Callable

import attrs
import torch

from evcsa.defenses.base import ModelClassifier
from evcsa.errors import InvalidParameter, ModelTampered
from evcsa.games.rules import Rules, count_judged_successes, judge_success
from evcsa.randomness import KeySource

__all__ = ["Knowledge", "adversary_copy", "check_model_unchanged", "model_state"]


def _rule_alias(name: str) -> property:
    def get(self: Knowledge) -> Any:
        return getattr(self.rules, name)

    get.__doc__ = f"``rules.{name}`` (a view of the game's :class:`Rules`, not a copy)."
    return property(get)


@attrs.frozen(eq=False)
class Knowledge:
    """What the adversary is given: ⟨C⟩, X_D, N and ε (seed 000 Fig. 1 line 3).

    Everything here is the adversary's own: tensors are private copies, the model is a
    deep copy of the game's (eval mode; input gradients work), the whitebox twin is a
    distinct deep copy with the adversary's own keys. Changing any of them cannot change
    the game, and the defense's own keys are never reachable from here.

    Attributes:
        level: "blackbox", "graybox" or "whitebox".
        samples: X_D, float32 [M, C, H, W] in [0, 1] (CPU).
        labels: the true labels, int64 [M] (CPU).
        num_classes: K.
        rules: the game's :class:`Rules` record (N, ε, norm, goal, freshness, reveal, the
            untargeted reference, the Classify budget, the tolerance). The old attribute
            names (``n_chosen``, ``epsilon``, ``norm``, ``goal``, ``tolerance``,
            ``freshness``, ``reveal``, ``untargeted_reference``, ``classify_budget``) read
            through to it.
        randomized: whether the classifier says it is randomized (None: unknown).
        model: a copy of the undefended model (graybox and whitebox), else None.
        defense: a twin of the defended classifier with the adversary's own randomness
            (whitebox), else None.
        generator: the adversary's torch.Generator (CPU) for its own random choices.
        keys: the adversary's KeySource (the twin draws from keys derived from it).
    """

    level: str
    samples: torch.Tensor = attrs.field(repr=False)
    labels: torch.Tensor = attrs.field(repr=False)
    num_classes: int
    rules: Rules
    randomized: bool | None
    model: ModelClassifier | None = attrs.field(repr=False)
    defense: Any = attrs.field(repr=False)
    generator: torch.Generator = attrs.field(repr=False)
    keys: KeySource = attrs.field(repr=False)

    n_chosen = _rule_alias("n_chosen")
    epsilon = _rule_alias("epsilon")
    norm = _rule_alias("norm")
    goal = _rule_alias("goal")
    tolerance = _rule_alias("tolerance")
    freshness = _rule_alias("freshness")
    reveal = _rule_alias("reveal")
    untargeted_reference = _rule_alias("untargeted_reference")
    classify_budget = _rule_alias("classify_budget")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.samples.shape[1:])  # type: ignore[return-value]

    def is_success(self, predictions: object, labels: object, *, targets: object = None,
                   reference_predictions: object = None) -> torch.Tensor:
        """The game's success rule, :meth:`Rules.is_success` (use it; never write your own).

        Args:
            predictions: C(x′), int64 [..., B] (leading draw dimensions broadcast).
            labels: true labels of the sources, int64 [B].
            targets: y_t, int64 [B], in a targeted game (else None).
            reference_predictions: C(x) on fresh randomness, int64 [..., B], in an
                untargeted game against the prediction (``rules.untargeted_reference ==
                "prediction"``).

        Returns:
            torch.bool [..., B]; REJECTED (−1) is never a success, nor is anything judged
            against a REJECTED C(x).

        Raises:
            InvalidParameter: as :func:`evcsa.judging.is_success`.
        """
        return judge_success(self.rules, predictions, labels, targets=targets,
                             reference_predictions=reference_predictions)

    def count_successes(self, classify: Callable[[torch.Tensor], object], x: torch.Tensor, labels: torch.Tensor,
                        *, draws: int, targets: torch.Tensor | None = None,
                        clean_predictions: torch.Tensor | None = None, batch_size: int | None = None,
                        clean: torch.Tensor | None = None, order: str = "draw-major",
                        on_predictions: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        """Successes over ``draws`` fresh classifications of each image of ``x`` by this
        game's rule (:func:`evcsa.games.rules.count_judged_successes` with :attr:`rules`):
        how an adversary's estimate p̂ counts, the way the referee judges.

        Args:
            classify: the classifier to count on (the adversary's twin, or the Classify
                oracle), called on batches of images, answering labels (REJECTED allowed).
            x: float32 [B, C, H, W] in [0, 1], the candidates.
            labels: int64 [B], their sources' true labels.
            draws: fresh classifications per image, ≥ 1.
            targets, clean_predictions, batch_size, clean, order, on_predictions: as
                :func:`evcsa.judging.count_successes`.

        Returns:
            int64 tensor [B] (CPU), values in [0, draws].

        Raises:
            InvalidParameter, InvalidOutput: as :func:`evcsa.judging.count_successes`.
        """
        return count_judged_successes(self.rules, classify, x, labels, draws=draws, targets=targets,
                                      clean_predictions=clean_predictions, batch_size=batch_size, clean=clean,
                                      order=order, on_predictions=on_predictions)


def adversary_copy(objects: Any) -> Any:
    """A deep copy of what the adversary receives (the model, the twin), so that nothing
    it does to them (hooks, monkeypatched methods, ``.data`` swaps, attributes) reaches
    the game's objects.

    Raises:
        InvalidParameter: an object that cannot be deep-copied (named).
    """
    try:
        return copy.deepcopy(objects)
    except Exception as exc:
        names = ", ".join(type(o).__name__ for o in objects if o is not None)
        raise InvalidParameter(f"expected the model and twin handed to the adversary ({names}) to be deep-copyable "
                               f"(copy.deepcopy), got {type(exc).__name__}: {exc}") from exc


def model_state(model: ModelClassifier | None) -> tuple | None:
    """What identifies the state of the model handed to the adversary: each parameter's
    and buffer's storage and version counter, a float64 sum of its values (which catches
    writes through ``.data`` that bypass the counter), and every submodule's train/eval
    mode. None when there is no model (blackbox knowledge)."""
    if model is None:
        return None
    module = model.module
    tensors = [*module.parameters(), *module.buffers()]
    with torch.no_grad():
        sums = torch.stack([t.detach().double().sum() for t in tensors]).cpu().numpy().tobytes() \
            if tensors else b""
    return (tuple((t.data_ptr(), _version(t)) for t in tensors), sums,
            tuple(m.training for m in module.modules()))


def _version(t: torch.Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # inference tensors have no version counter
        return None


def check_model_unchanged(before: tuple | None, model: ModelClassifier | None, phase: str) -> None:
    """Raise ModelTampered when the model's state differs from ``before`` after the
    adversary's ``phase`` ("prepare" or "play")."""
    if before is None or model_state(model) == before:
        return
    raise ModelTampered(
        f"expected the adversary to leave the model it was given unchanged, got its parameters, "
        f"buffers or train/eval mode changed during {phase}; the game's result is void "
        "(work on a copy: copy.deepcopy(knowledge.model.module))", phase=phase)
