"""Classifiers the game attacks: the model wrapper, squeezers and randomized defenses."""

from evcsa.defenses.base import REJECTED, Classifier, Defense, ModelClassifier, undefended_model

__all__ = ["REJECTED", "Classifier", "Defense", "ModelClassifier", "undefended_model"]
