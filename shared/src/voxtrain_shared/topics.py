"""Topic names, in one place.

Every topic lives under a namespace (``voxtrain`` in production). Tests and side-by-side
deployments pick another namespace so they never see each other's messages.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "voxtrain"
DEAD_LETTER_SUFFIX = ".dlt"
#: The logical keys of every topic (the properties of :class:`Topics`; a message's ``TOPIC`` is one of them).
TOPIC_KEYS = (
    "models",
    "model_commands",
    "datasets",
    "validation",
    "training_commands",
    "training_events",
    "status",
    "credits",
)


@dataclass(frozen=True)
class Topics:
    """The project's topics under one namespace."""

    namespace: str = DEFAULT_NAMESPACE

    def _name(self, suffix: str) -> str:
        return f"{self.namespace}.{suffix}"

    @property
    def models(self) -> str:
        """ModelCreated / ModelUpdated / ModelDeleted / CommandRejected / ValidationRequested / TrainingCancelled."""
        return self._name("models")

    @property
    def model_commands(self) -> str:
        """CreateModel / StartTraining / CancelTraining from other services."""
        return self._name("models.commands")

    @property
    def datasets(self) -> str:
        """DatasetUploaded / DatasetDeleted."""
        return self._name("datasets")

    @property
    def validation(self) -> str:
        """ValidationPassed / ValidationFailed."""
        return self._name("validation")

    @property
    def training_commands(self) -> str:
        """TrainingRequested."""
        return self._name("training.commands")

    @property
    def training_events(self) -> str:
        """TrainingStarted / TrainingProgress / TrainingSucceeded / TrainingFailed."""
        return self._name("training.events")

    @property
    def status(self) -> str:
        """TrainingStatusChanged: the public status topic."""
        return self._name("training.status")

    @property
    def credits(self) -> str:
        """CreditsReserved / CreditsCharged / CreditsRefunded: the tenants' credit ledger."""
        return self._name("credits")

    def by_key(self, key: str) -> str:
        """Resolve a logical topic key (an Event's ``TOPIC``) to its name."""
        name: str = getattr(self, key)
        return name

    def all(self) -> list[str]:
        """Every topic of the namespace (without dead-letter topics)."""
        return [self.by_key(k) for k in TOPIC_KEYS]


def dead_letter(topic: str) -> str:
    """The dead-letter topic of a topic."""
    return topic + DEAD_LETTER_SUFFIX


TOPICS = Topics()
