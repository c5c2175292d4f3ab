"""Use cases of the datasets service, one module per job. Dependencies come in as parameters (:class:`Deps`).

- :mod:`.guards`       may this model's datasets change now? (the projected model status)
- :mod:`.recording`    recording stored files as datasets (both upload paths), forgetting objects
- :mod:`.uploads`      streamed multipart/form-data uploads
- :mod:`.sessions`     resumable (presigned, multipart) uploads
- :mod:`.reads`        listing, reading, download URLs
- :mod:`.deletes`      deleting a dataset
- :mod:`.sweeping`     removing expired sessions and abandoned objects (driven by :mod:`..workers`)
- :mod:`.projections`  facts from other services (model status, verdicts), applied once by the consumers

Records and their events are written in one transaction (``tx.emit``: outbox); consumers record the
handled message in the inbox in that transaction. Bytes go to storage *before* that transaction, so every
object written is first noted in ``pending_objects``: a failed or abandoned upload leaves nothing
behind, even when storage or this process dies half-way (the sweeper finishes the clean-up).
"""

from .deps import Deps, now

__all__ = ["Deps", "now"]
