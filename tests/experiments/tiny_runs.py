"""The smallest run configuration of the engine's tests: the 8×8 digits model, X_D of 20,
N = 3, 4 games, one cell, no figures (a run takes about a second)."""

TINY = """
name = "tiny"
seed = 5
runs = 4
master_key = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
legitimate_draws = 1
[data]
dataset = "digits"
samples = 20
[model]
reference = "digits"
[game]
n_chosen = 3
epsilon = 0.3
[[defenses]]
label = "plain"
kind = "none"
[[adversaries]]
label = "fgsm"
kind = "graybox_transfer"
attack = "fgsm"
[figures]
enabled = false
"""
