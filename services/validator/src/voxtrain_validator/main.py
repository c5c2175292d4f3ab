"""``voxtrain-validator``: run the validator service."""

from voxtrain_shared.http import serve
from voxtrain_shared.settings import ValidatorSettings, load

from .bootstrap import build


def run() -> None:
    settings = load(ValidatorSettings)
    serve(build(settings).app, settings)
