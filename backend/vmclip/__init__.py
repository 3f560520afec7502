"""VideoMotionCLIP backend: text -> motion -> person -> frames -> video.

Stages are subpackages with small public APIs: `vmclip.motion`, `vmclip.text`, `vmclip.t2m`,
`vmclip.person`, `vmclip.render`, `vmclip.server`. Data flows one way through them.
"""

__version__ = "0.1.0"
