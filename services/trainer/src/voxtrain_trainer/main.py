"""``voxtrain-trainer``: run the trainer service.

Nothing is imported at module level: a training worker process is spawned, and spawning re-runs the
entry script that imports this module, so a top-level import of the web service here would cost every
training the import of FastAPI, Kafka and PostgreSQL clients it never uses (see processes.py).
"""


def run() -> None:
    from voxtrain_shared.http import serve
    from voxtrain_shared.settings import TrainerSettings, load

    from .bootstrap import build

    settings = load(TrainerSettings)
    serve(build(settings).app, settings)
