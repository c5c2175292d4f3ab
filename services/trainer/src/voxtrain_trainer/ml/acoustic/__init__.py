"""Acoustic adaptation of the base PocketSphinx model with CMU's SphinxTrain tools (MLLR, MAP)."""
