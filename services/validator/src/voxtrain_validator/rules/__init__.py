"""The validator's content checks: pure, synchronous functions over a readable stream.

No Kafka, no database, no object store here: the service hands each function a stream (a local
file, or the S3 reader in ``adapters``) and turns the Outcome into an event. The functions keep
no shared state, so the service may run many at once in a thread or process pool.
"""

from .audio import validate_audio
from .dispatch import validate_dataset
from .manifest import AmbiguousReference, DatasetRef, DatasetState, Resolver, validate_manifest
from .outcome import MAX_DETAILS, Finding, Outcome, SourceReadError
from .transcript import validate_transcript

__all__ = [
    "MAX_DETAILS",
    "AmbiguousReference",
    "DatasetRef",
    "DatasetState",
    "Finding",
    "Outcome",
    "Resolver",
    "SourceReadError",
    "validate_audio",
    "validate_dataset",
    "validate_manifest",
    "validate_transcript",
]
