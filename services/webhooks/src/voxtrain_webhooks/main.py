"""``voxtrain-webhooks``: run the webhooks service."""

from voxtrain_shared.http import serve
from voxtrain_shared.settings import WebhooksSettings, load

from .bootstrap import build


def run() -> None:
    settings = load(WebhooksSettings)
    serve(build(settings).app, settings)
