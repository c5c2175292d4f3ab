"""``voxtrain-trainer``: run the trainer service."""

from voxtrain_shared.service import serve
from voxtrain_shared.settings import TrainerSettings, load

from .bootstrap import build


def run() -> None:
    settings = load(TrainerSettings)
    serve(build(settings).app, settings)
