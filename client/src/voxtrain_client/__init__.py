"""voxtrain's Python client: ``Client`` for programs, ``vt`` for people (see ``vt --help``)."""

from .api import ApiError, Client
from .config import ClientConfig

__all__ = ["ApiError", "Client", "ClientConfig"]
