"""Backend service: the pipeline behind a ZeroMQ ROUTER socket (protocol: `vmclip_protocol`).

Public API: `Server`, `ServerConfig`, `Limits`, `Pipeline` (the ML stages, resolved lazily),
`StageUnavailable`, `JobCancelled`, `is_local_address`.
"""

from vmclip.server.pipeline import JobCancelled, Pipeline, StageUnavailable
from vmclip.server.security import is_local_address
from vmclip.server.service import Limits, Server, ServerConfig

__all__ = [
    "JobCancelled",
    "Limits",
    "Pipeline",
    "Server",
    "ServerConfig",
    "StageUnavailable",
    "is_local_address",
]
