"""``voxtrain-datasets``: run the datasets service."""

from voxtrain_shared.service import serve
from voxtrain_shared.settings import DatasetsSettings, load

from .bootstrap import build


def run() -> None:
    settings = load(DatasetsSettings)
    serve(build(settings).app, settings)
