"""voxtrain's contract generator (development tool): ``voxtrain-contracts --out docs [--check]``."""
