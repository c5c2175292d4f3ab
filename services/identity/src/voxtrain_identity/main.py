"""``voxtrain-identity``: run the identity service."""

from voxtrain_shared.http import serve
from voxtrain_shared.settings import IdentitySettings, load

from .bootstrap import build


def run() -> None:
    settings = load(IdentitySettings)
    serve(build(settings).app, settings)
