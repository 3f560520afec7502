"""Triangle rasteriser on OpenGL (moderngl, EGL: Mesa llvmpipe on CPU machines, the GPU where present).

One headless context per process, reused for every frame. A render returns, per pixel, the id of
the front-most triangle and the perspective-correct barycentric coordinates of the pixel inside it,
plus the camera-space depth; any per-vertex attribute (source-photo coordinates, body part, ...) is
then interpolated on the CPU with `Raster.interpolate`, so one render serves every use.

Cameras follow OpenCV (see `vmclip.geometry`): pixel ~ K @ (R @ X + t), pixel centres at integer
coordinates, rows down.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from vmclip.errors import VmclipError
from vmclip.geometry import project

NEAR, FAR = 0.02, 200.0

_VERTEX_SHADER = """
#version 330
in vec4 in_clip;
void main() {
    gl_Position = in_clip;
}
"""

# The geometry shader tags each triangle's corners with barycentric coordinates, so that vertices
# are uploaded once per frame and shared through a fixed index buffer (no per-frame triangle soup).
_GEOMETRY_SHADER = """
#version 330
layout(triangles) in;
layout(triangle_strip, max_vertices = 3) out;
out vec2 v_bary;
out float v_depth;
void main() {
    for (int k = 0; k < 3; ++k) {
        gl_Position = gl_in[k].gl_Position;
        v_bary = vec2(k == 0, k == 1);
        v_depth = gl_in[k].gl_Position.w;
        gl_PrimitiveID = gl_PrimitiveIDIn;
        EmitVertex();
    }
    EndPrimitive();
}
"""

_FRAGMENT_SHADER = """
#version 330
in vec2 v_bary;
in float v_depth;
layout(location = 0) out vec4 out_px;
void main() {
    // Triangle id + 1 as a float (exact below 2^24 triangles); 0 = empty, the clear value.
    out_px = vec4(v_bary.x, v_bary.y, v_depth, float(gl_PrimitiveID + 1));
}
"""


@dataclass
class Raster:
    """One rasterised view. `tri` (H, W) int32 (-1 = empty), `bary` (H, W, 3), `depth` (H, W) camera z.
    With a region of interest the arrays cover only that window, whose top-left pixel is (x0, y0)."""

    tri: np.ndarray
    bary: np.ndarray
    depth: np.ndarray
    faces: np.ndarray
    x0: int = 0
    y0: int = 0

    @property
    def mask(self) -> np.ndarray:
        return self.tri >= 0

    @cached_property
    def covered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The covered pixels' flat indices (row-major), triangles and barycentrics: gathered once,
        since every per-pixel attribute of a frame reads them."""
        index = np.flatnonzero(self.tri >= 0)
        return index, self.tri.ravel()[index], self.bary.reshape(-1, 3)[index]

    def _select(self, where: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if where is None:
            return self.covered[1:]
        sel = where & self.mask
        return self.tri[sel], self.bary[sel]

    def interpolate(self, attr: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Per-vertex attribute (V, C) -> per-pixel values (N, C) at the covered pixels
        (or at the boolean selection `where`), in row-major order of those pixels."""
        tri, bary = self._select(where)
        attr = np.asarray(attr, dtype=np.float32)
        if attr.ndim == 1:
            attr = attr[:, None]
        # (np.take gathers rows about twice as fast as fancy indexing; same values)
        return np.einsum("nk,nkc->nc", bary, np.take(attr, self.faces[tri], axis=0))

    def vertex_of_max_weight(self, where: np.ndarray | None = None) -> np.ndarray:
        """For each covered pixel the mesh vertex closest to it (largest barycentric weight; the first
        of equal ones, as argmax, which is slow along an axis of three)."""
        tri, bary = self._select(where)
        b0, b1, b2 = bary[:, 0], bary[:, 1], bary[:, 2]
        k = (b1 > b0).astype(np.int64)
        k[b2 > np.maximum(b0, b1)] = 2
        return self.faces[tri, k]


# Mesa's software renderers: used only where EGL offers no GPU (a machine with both lists Mesa's
# software device beside the GPU's, and its order is the driver loader's, not ours).
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast")
MAX_EGL_DEVICES = 16  # EGL devices tried in turn (one per GPU, plus Mesa's software device)


def is_software_renderer(renderer: str) -> bool:
    return any(name in renderer.lower() for name in SOFTWARE_RENDERERS)


def open_egl_context() -> Any:
    """A headless moderngl context on the first EGL device with a hardware renderer, else on device 0
    (Mesa llvmpipe on machines without a GPU). $GLCONTEXT_DEVICE_INDEX (read by glcontext) picks
    one device explicitly, e.g. the GPU that also runs CUDA on a machine with several."""
    import moderngl

    if os.environ.get("GLCONTEXT_DEVICE_INDEX"):
        return moderngl.create_context(standalone=True, backend="egl")
    fallback = None
    for index in range(MAX_EGL_DEVICES):
        try:
            ctx = moderngl.create_context(standalone=True, backend="egl", device_index=index)
        except Exception:  # noqa: BLE001 - past the last device (or none at all)
            if fallback is None and index == 0:
                raise
            break
        if not is_software_renderer(str(ctx.info.get("GL_RENDERER", ""))):
            if fallback is not None:
                fallback.release()
            return ctx
        if fallback is None:
            fallback = ctx
        else:
            ctx.release()
    return fallback


class Rasterizer:
    """A reusable headless OpenGL rasteriser. Use `get_rasterizer()` for the per-process instance."""

    def __init__(self) -> None:
        # EGL lets a context be current in one thread at a time, and a new context stays current in
        # the thread that made it; the server's workers share this rasteriser. So one thread owns the
        # context and makes every GL call (Mesa tolerates hopping threads, NVIDIA's EGL need not).
        self._gl = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vmclip-gl")
        try:
            self._gl.submit(self._open).result()
        except BaseException:
            self._gl.shutdown(wait=False)
            raise
        self._fbo_size: tuple[int, int] | None = None
        self._vbo = self._ibo = self.vao = None
        self._vbo_bytes = 0
        self._faces: np.ndarray | None = None  # the faces in the index buffer

    def _open(self) -> None:
        try:
            self.ctx = open_egl_context()
        except Exception as exc:  # noqa: BLE001 - any EGL failure has the same remedy
            raise VmclipError(
                f"cannot open a headless OpenGL (EGL) context: {exc}. Install Mesa's EGL "
                "(Debian: apt-get install libegl1 libgl1-mesa-dri) or a GPU driver"
            ) from None
        self.program = self.ctx.program(
            vertex_shader=_VERTEX_SHADER, geometry_shader=_GEOMETRY_SHADER, fragment_shader=_FRAGMENT_SHADER
        )
        self._renderer = str(self.ctx.info.get("GL_RENDERER", "unknown"))

    @property
    def renderer(self) -> str:
        return self._renderer

    def _framebuffer(self, width: int, height: int) -> None:
        if self._fbo_size == (width, height):
            return
        if self._fbo_size is not None:
            self.fbo.release()
            for item in self._attachments:
                item.release()
        self.color = self.ctx.texture((width, height), 4, dtype="f4")
        self.depth_rb = self.ctx.depth_renderbuffer((width, height))
        self._attachments = (self.color, self.depth_rb)
        self.fbo = self.ctx.framebuffer(color_attachments=[self.color], depth_attachment=self.depth_rb)
        self._fbo_size = (width, height)

    def _geometry(self, faces: np.ndarray, vertex_bytes: int) -> None:
        """(Re)build the vertex buffer, the index buffer and the vertex array when the mesh changes
        (the faces are compared by value: the same body arrives as new arrays)."""
        same_faces = self._faces is not None and (
            faces is self._faces or (faces.shape == self._faces.shape and np.array_equal(faces, self._faces))
        )
        if same_faces and self._vbo_bytes >= vertex_bytes:
            return
        for item in (self.vao, self._vbo, self._ibo):
            if item is not None:
                item.release()
        self._vbo_bytes = max(vertex_bytes, self._vbo_bytes if same_faces else 0)
        self._vbo = self.ctx.buffer(reserve=self._vbo_bytes)
        self._ibo = self.ctx.buffer(faces.astype(np.int32).tobytes())
        self.vao = self.ctx.vertex_array(
            self.program, [(self._vbo, "4f", "in_clip")], index_buffer=self._ibo, index_element_size=4
        )
        self._faces = faces

    def _draw(
        self, faces: np.ndarray, data: bytes, width: int, height: int, roi: tuple[int, int, int, int] | None
    ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The GL part of `render` (in the GL thread): draw, read back the window."""
        with self.ctx:
            self._framebuffer(width, height)
            self._geometry(faces, len(data))
            self._vbo.write(data)
            self.fbo.use()
            self.ctx.viewport = (0, 0, width, height)
            self.ctx.enable(self.ctx.DEPTH_TEST)
            self.ctx.disable(self.ctx.CULL_FACE)
            self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            self.vao.render(vertices=len(faces) * 3)
            x0, y0, x1, y1 = roi if roi is not None else (0, 0, width, height)
            x0, y0 = max(0, int(x0)), max(0, int(y0))
            x1, y1 = min(width, int(x1)), min(height, int(y1))
            x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
            viewport = (x0, y0, x1 - x0, y1 - y0)
            color = np.frombuffer(
                self.fbo.read(viewport=viewport, components=4, attachment=0, dtype="f4"), dtype=np.float32
            )
        return color, (x0, y0, x1, y1)

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        K: np.ndarray,
        R: np.ndarray,
        t: np.ndarray,
        width: int,
        height: int,
        roi: tuple[int, int, int, int] | None = None,
    ) -> Raster:
        """Rasterise the mesh (vertices (V, 3) world, faces (F, 3)) seen by camera (K, R, t) into a
        width x height image; only the window `roi` = (x0, y0, x1, y1) is read back when given."""
        faces = np.ascontiguousarray(faces, dtype=np.int64)
        uv, z = project(np.asarray(vertices, dtype=np.float64), K, R, t)
        # OpenCV pixel centre (integer) -> GL pixel centre (+0.5); GL's row 0 is read back first,
        # so mapping v to y_ndc increasing makes the read-back image come out rows-down.
        x_ndc = 2.0 * (uv[:, 0] + 0.5) / width - 1.0
        y_ndc = 2.0 * (uv[:, 1] + 0.5) / height - 1.0
        a, b = (FAR + NEAR) / (FAR - NEAR), -2.0 * FAR * NEAR / (FAR - NEAR)
        clip = np.stack([x_ndc * z, y_ndc * z, a * z + b, z], axis=1).astype(np.float32)
        color, (x0, y0, x1, y1) = self._gl.submit(
            self._draw, faces, clip.tobytes(), width, height, roi
        ).result()
        height, width = y1 - y0, x1 - x0
        # (OpenCV splits and merges the interleaved channels several times faster than numpy's
        # strided copies)
        b0, b1, z, tri = cv2.split(color.reshape(height, width, 4))
        tri = tri.astype(np.int32)
        tri -= 1
        bary = cv2.merge([b0, b1, 1.0 - b0 - b1])
        depth = np.where(tri >= 0, z, np.float32(np.inf))
        return Raster(tri=tri, bary=bary, depth=depth, faces=faces, x0=x0, y0=y0)


_INSTANCE: Rasterizer | None = None
_INSTANCE_LOCK = threading.Lock()


def get_rasterizer() -> Rasterizer:
    """The process-wide rasteriser (the EGL context is created once)."""
    global _INSTANCE
    with _INSTANCE_LOCK:
        if _INSTANCE is None:
            _INSTANCE = Rasterizer()
        return _INSTANCE
