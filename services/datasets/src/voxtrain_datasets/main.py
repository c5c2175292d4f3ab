"""``voxtrain-datasets``: run the datasets service."""

from voxtrain_shared.http import serve
from voxtrain_shared.settings import DatasetsSettings, load

from .bootstrap import build


def run() -> None:
    settings = load(DatasetsSettings)
    # C HTTP parsing and event loop: a streamed upload spends less CPU per byte (bench/datasets/RESULTS.md)
    serve(build(settings).app, settings, loop="uvloop", http="httptools")
