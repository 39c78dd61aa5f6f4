"""Weights trained for vcopy and shipped with it (installed as ``vcopy.weights``); see README.md."""
