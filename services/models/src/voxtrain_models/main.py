"""``voxtrain-models``: run the models service."""

from voxtrain_shared.http import serve
from voxtrain_shared.settings import ModelsSettings, load

from .bootstrap import build


def run() -> None:
    settings = load(ModelsSettings)
    serve(build(settings).app, settings)
