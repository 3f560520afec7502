"""Optional learned refinement: Liquid Warping GAN's attentional generator (iPERCore's AttLWB-SPADE).

Used only when the user points to such weights (`--lwg CKPT`); the classical warping stands on its own.
The network is written here from the published architecture (layer names and shapes follow iPERCore's
generator so that its `*_G.pth` state dicts load unchanged): a source identity encoder ("src_net", an
auto-encoder over the source photo + its body condition map), a transfer network whose encoder
("tsf_net_enc") and residual blocks are, at every stage, normalised by SPADE conditioned on source
features warped with the transformation flow and fused by attention over the sources ("enc_attlwbs",
"res_attlwbs"), a skip decoder ("tsf_net_dec") and two heads: colour ("tsf_img_reg", tanh) and an
attention matte ("tsf_att_reg", sigmoid) that blends with the background. iPERCore's own background
in-painter ("bg_net") is not needed: our plate replaces it, so those weights are skipped.

Condition maps: iPERCore feeds SMPL's UV-coloured rendering; we render our body with a fixed colour per
vertex (its normalised rest position), which is the same kind of signal but not the same colours, so
weights trained on SMPL conditions are an approximation here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vmclip.errors import InputError, MissingAssetError


class _Residual(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(), nn.Conv2d(ch, ch, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class _Spade(nn.Module):
    """Instance norm whose scale and shift come from a condition feature map (3x3 convs, 128 hidden)."""

    def __init__(self, norm_ch: int, cond_ch: int, hidden: int = 128) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_ch)
        self.mlp_shared = nn.Sequential(nn.Conv2d(cond_ch, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_ch, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        act = self.mlp_shared(cond)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(act)) + self.mlp_beta(act)


class _AttentionLWB(nn.Module):
    """Warp source features with the flow, attend over the sources, SPADE-normalise the query."""

    def __init__(self, ch_q: int, ch_s: int, ch: int) -> None:
        super().__init__()
        self.fq = nn.Conv2d(ch_q, ch, 1)
        self.fk = nn.Conv2d(ch_s, ch, 1)
        self.fv = nn.Conv2d(ch_s, ch, 1)
        self.spade = _Spade(ch_q, ch)

    def forward(self, tsf_x: torch.Tensor, src_x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        bs, ns = grid.shape[:2]
        h, w = tsf_x.shape[-2:]
        g = grid.reshape(bs * ns, *grid.shape[2:])
        if g.shape[1:3] != (h, w):
            g = F.interpolate(
                g.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=True
            ).permute(0, 2, 3, 1)
        warped = F.grid_sample(src_x, g, align_corners=False)
        k = self.fk(warped).reshape(bs, ns, -1, h, w)
        v = self.fv(warped).reshape(bs, ns, -1, h, w)
        q = self.fq(tsf_x)
        att = torch.softmax((k * q[:, None]).sum(2, keepdim=True) / np.sqrt(k.shape[2]), dim=1)
        return self.spade(tsf_x, (att * v).sum(1))


class _Encoder(nn.Module):
    def __init__(self, in_ch: int, filters: list[int], bias: bool = True) -> None:
        super().__init__()
        chans = [in_ch, *filters]
        self.layers = nn.Sequential(
            *[
                nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1, bias=bias), nn.ReLU())
                for i in range(len(filters))
            ]
        )


class _Decoder(nn.Module):
    def __init__(self, in_ch: int, filters: list[int]) -> None:
        super().__init__()
        chans = [in_ch, *filters]
        self.layers = nn.Sequential(
            *[
                nn.Sequential(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1), nn.ReLU())
                for i in range(len(filters))
            ]
        )


class _SkipDecoder(nn.Module):
    def __init__(self, in_ch: int, enc_filters: list[int], dec_filters: list[int]) -> None:
        super().__init__()
        n = len(dec_filters)
        self.n = n
        chans = [in_ch, *dec_filters]
        self.upconvs = nn.Sequential(
            *[nn.Sequential(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1), nn.ReLU()) for i in range(n)]
        )
        self.skippers = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(enc_filters[n - 2 - i] + dec_filters[i], dec_filters[i], 3, 1, 1), nn.ReLU()
                )
                for i in range(n - 1)
            ]
        )

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for i in range(self.n):
            x = self.upconvs[i](x)
            if i != self.n - 1:
                x = self.skippers[i](torch.cat([skips[self.n - 2 - i], x], 1))
        return x


class _SourceNet(nn.Module):
    def __init__(self, in_ch: int, filters: list[int], n_res: int) -> None:
        super().__init__()
        self.encoders = _Encoder(in_ch, filters)
        self.res_blocks = nn.Sequential(*[_Residual(filters[-1]) for _ in range(n_res)])
        self.decoders = _Decoder(filters[-1], list(reversed(filters)))
        self.img_reg = nn.Sequential(nn.Conv2d(filters[0], 3, 5, 1, 2, bias=False), nn.Tanh())
        self.att_reg = nn.Sequential(nn.Conv2d(filters[0], 1, 5, 1, 2, bias=False), nn.Sigmoid())

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        enc = []
        for layer in self.encoders.layers:
            x = layer(x)
            enc.append(x)
        res = []
        for block in self.res_blocks:
            x = block(x)
            res.append(x)
        return enc, res


class AttLWBGenerator(nn.Module):
    """The transfer generator (iPERCore AttLWB-SPADE layout, background in-painter excluded)."""

    def __init__(
        self,
        filters: tuple[int, ...] = (64, 128, 256),
        n_res: int = 6,
        src_ch: int = 6,
        tsf_ch: int = 6,
        src_filters: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        filters = list(filters)
        self.src_net = _SourceNet(src_ch, list(src_filters or filters), n_res)
        self.tsf_net_enc = _Encoder(tsf_ch, filters, bias=False)
        self.tsf_net_dec = _SkipDecoder(filters[-1], filters, list(reversed(filters)))
        self.enc_attlwbs = nn.ModuleList([_AttentionLWB(f, f, f) for f in filters])
        self.res_attlwbs = nn.ModuleList(
            [_AttentionLWB(filters[-1], filters[-1], filters[-1]) for _ in range(n_res)]
        )
        self.res_blocks = nn.Sequential(*[_Residual(filters[-1]) for _ in range(n_res)])
        self.tsf_img_reg = nn.Sequential(nn.Conv2d(filters[0], 3, 5, 1, 2, bias=False), nn.Tanh())
        self.tsf_att_reg = nn.Sequential(nn.Conv2d(filters[0], 1, 5, 1, 2, bias=False), nn.Sigmoid())

    def forward(
        self, src_inputs: torch.Tensor, tsf_inputs: torch.Tensor, grid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """src_inputs (bs, ns, 6, H, W), tsf_inputs (bs, 6, H, W), grid (bs, ns, H, W, 2) in [-1, 1]
        -> image (bs, 3, H, W) in [-1, 1], background attention (bs, 1, H, W)."""
        bs, ns = src_inputs.shape[:2]
        src_enc, src_res = self.src_net.features(src_inputs.flatten(0, 1))
        x = tsf_inputs
        skips = []
        for i, layer in enumerate(self.tsf_net_enc.layers):
            x = self.enc_attlwbs[i](layer(x), src_enc[i], grid)
            skips.append(x)
        for i, block in enumerate(self.res_blocks):
            x = self.res_attlwbs[i](block(x), src_res[i], grid)
        x = self.tsf_net_dec(x, skips)
        return self.tsf_img_reg(x), self.tsf_att_reg(x)


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise MissingAssetError(f"{path}: Liquid Warping GAN checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    for key in ("state_dict", "generator", "G", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise InputError(f"{path}: expected a generator state dict (iPERCore *_G.pth)")
    return {k.removeprefix("module."): v for k, v in data.items()}


def generator_from_state(state: dict[str, torch.Tensor], where: str = "checkpoint") -> AttLWBGenerator:
    """Build the generator with the sizes the state dict implies, then load it (strictly, apart from
    iPERCore's background in-painter)."""
    try:
        n_down = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("tsf_net_enc.layers."))
        filters = tuple(int(state[f"tsf_net_enc.layers.{i}.0.weight"].shape[0]) for i in range(n_down))
        src_filters = tuple(
            int(state[f"src_net.encoders.layers.{i}.0.weight"].shape[0]) for i in range(n_down)
        )
        n_res = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("res_blocks."))
        tsf_ch = int(state["tsf_net_enc.layers.0.0.weight"].shape[1])
        src_ch = int(state["src_net.encoders.layers.0.0.weight"].shape[1])
    except (KeyError, ValueError) as exc:
        raise InputError(f"{where}: not an iPERCore AttLWB generator ({exc})") from None
    net = AttLWBGenerator(filters, n_res, src_ch, tsf_ch, src_filters)
    ours = {k: v for k, v in state.items() if not k.startswith("bg_net.")}
    missing, unexpected = net.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{where}: generator weights do not match the AttLWB layout "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return net.eval()


class LWGRefiner:
    """Runs the generator on each warped frame: the classical flow gives the network its transformation
    flow and warped input; its output replaces the person (blended by its own attention matte)."""

    def __init__(self, net: AttLWBGenerator, device: str | None = None, work_size: int = 256) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net = net.to(self.device)
        self.work_size = work_size
        self._scene_id: int | None = None

    def _cond_colors(self, scene) -> np.ndarray:
        rest = np.asarray(scene.body.rest_vertices(scene.shape), dtype=np.float32)
        lo, hi = rest.min(0), rest.max(0)
        return (rest - lo) / np.maximum(hi - lo, 1e-6)

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(np.ascontiguousarray(img), dtype=torch.float32, device=self.device)
        return t.permute(2, 0, 1)[None]

    def _prepare(self, scene) -> None:
        import cv2

        # The network runs at a fixed square working size (a multiple of 8 for its 3 down-samplings).
        self.size = s = max(8, min(self.work_size, max(scene.width, scene.height)) // 8 * 8)
        self.colors = self._cond_colors(scene)
        srcs = []
        for src in scene.sources:
            cond = np.zeros((src.height, src.width, 3), np.float32)
            cond[src.raster.mask] = src.raster.interpolate(self.colors)
            img = src.image.astype(np.float32) / 127.5 - 1.0
            both = np.concatenate([img, cond * 2 - 1], -1)
            srcs.append(cv2.resize(both, (s, s), interpolation=cv2.INTER_AREA))
        self.src = torch.stack([self._tensor(x)[0] for x in srcs])[None]  # (1, ns, 6, s, s)
        self._scene_id = id(scene)

    @torch.no_grad()
    def refine(self, scene, warped, vertices: np.ndarray):
        """Return a new `Warped` for the full frame with the generator's person and matte."""
        import cv2

        from vmclip.render.raster import get_rasterizer
        from vmclip.render.warp import Warped

        if self._scene_id != id(scene):
            self._prepare(scene)
        s, w, h = self.size, scene.width, scene.height
        fl = warped.flow
        ns = len(scene.sources)
        grids = np.full((ns, h, w, 2), -2.0, np.float32)  # outside [-1, 1]: zeros from grid_sample
        y0, x0 = warped.y0, warped.x0
        wh, ww = fl.body.shape
        for si, src in enumerate(scene.sources):
            sel = fl.source == si
            gx = np.where(sel, fl.map_x / max(src.width - 1, 1) * 2 - 1, -2.0)
            gy = np.where(sel, fl.map_y / max(src.height - 1, 1) * 2 - 1, -2.0)
            grids[si, y0 : y0 + wh, x0 : x0 + ww, 0] = np.nan_to_num(gx, nan=-2.0)
            grids[si, y0 : y0 + wh, x0 : x0 + ww, 1] = np.nan_to_num(gy, nan=-2.0)
        small = np.stack([cv2.resize(g, (s, s), interpolation=cv2.INTER_NEAREST) for g in grids])
        grid = torch.as_tensor(small, device=self.device)[None]
        cam = scene.camera
        ras = get_rasterizer().render(vertices, scene.body.faces, cam.K, cam.R, cam.t, w, h)
        cond = np.zeros((h, w, 3), np.float32)
        cond[ras.mask] = ras.interpolate(self.colors)
        frame = np.zeros((h, w, 3), np.float32)
        frame[y0 : y0 + wh, x0 : x0 + ww] = warped.rgb * warped.alpha[..., None]
        tsf = np.concatenate([frame / 127.5 - 1.0, cond * 2 - 1], -1)
        tsf = cv2.resize(tsf, (s, s), interpolation=cv2.INTER_AREA)
        img, att = self.net(self.src, self._tensor(tsf), grid)
        img = cv2.resize((img[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5, (w, h))
        person = 1.0 - cv2.resize(att[0, 0].cpu().numpy(), (w, h))
        return Warped(
            rgb=np.clip(img, 0, 255).astype(np.float32), alpha=person.astype(np.float32), x0=0, y0=0, flow=fl
        )


def load_refiner(path: str | Path, device: str | None = None) -> LWGRefiner:
    """Load an iPERCore generator checkpoint (`*_G.pth` state dict, "module." prefixes allowed)."""
    path = Path(path)
    return LWGRefiner(generator_from_state(_state_dict(path), str(path)), device)
