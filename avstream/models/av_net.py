"""The audio-visual network: a localizer (EZ-VSL style) and a segmenter (TPAVI style, reduced)
sharing one image encoder, small enough for camera rate on a CPU.

- image encoder: six 3x3 conv blocks (BatchNorm, ReLU), stride 8 overall; a skip at stride 4.
- audio encoder: three strided conv blocks over the log-mel of the array's mono mix, pooled
  over time and frequency into one embedding.
- localizer: cosine similarity between the audio embedding and the image features at each
  position (stride 8), through a learned scale and bias and a sigmoid: ``heatmap`` 0..1.
- segmenter: the stride-4 skip features, modulated by the audio embedding (FiLM) and joined
  with the upsampled similarity, through two conv blocks: ``mask`` (probability, stride 4:
  a quarter of the input resolution).
- the published map is the localizer's, upsampled to stride 4, times the mask: "where the
  sound is" shaped by "which pixels are the object", so its peak falls on the object rather
  than somewhere in an 8x8 cell near it.

Inputs: ``image`` (1, 3, H, W) normalised RGB, ``audio`` (1, 1, n_mels, T) log-mel.
Outputs: ``heatmap`` (1, 1, H/4, W/4), ``mask`` (1, 1, H/4, W/4), ``similarity`` (raw cosine, H/8, W/8).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class AVNetConfig:
    image_size: tuple = (96, 128)  # H, W of the network input
    width: int = 24  # channels of the first conv block (then 2x, 4x)
    embed: int = 32
    sample_rate: int = 16000
    audio_samples: int = 8192  # mono samples behind one prediction (0.51 s at 16 kHz)
    n_fft: int = 512
    hop: int = 256
    n_mels: int = 40


def _block(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class AVNet(nn.Module):
    def __init__(self, cfg: AVNetConfig = AVNetConfig()):
        super().__init__()
        self.cfg = cfg
        w, e = cfg.width, cfg.embed
        self.stem = nn.Sequential(_block(3, w, 2), _block(w, w), _block(w, 2 * w, 2), _block(2 * w, 2 * w))  # /4
        self.deep = nn.Sequential(_block(2 * w, 4 * w, 2), _block(4 * w, 4 * w))  # /8
        self.v_proj = nn.Conv2d(4 * w, e, 1)
        self.audio = nn.Sequential(_block(1, w, 2), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2))
        self.a_proj = nn.Linear(4 * w, e)
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(-5.0))
        self.film = nn.Linear(e, 4 * w)  # per-channel gain and shift of the skip features
        self.seg = nn.Sequential(_block(2 * w + 1, 2 * w), _block(2 * w, w), nn.Conv2d(w, 1, 1))

    def embed_audio(self, audio):
        return F.normalize(self.a_proj(self.audio(audio).mean(dim=(2, 3))), dim=1)

    def features(self, image):
        skip = self.stem(image)
        return skip, F.normalize(self.v_proj(self.deep(skip)), dim=1)

    def heads(self, skip, v, a):
        sim = torch.einsum("behw,be->bhw", v, a).unsqueeze(1)  # cosine, (B, 1, H/8, W/8)
        heat = torch.sigmoid(self.scale * sim + self.bias)
        gain, shift = self.film(a).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        up = F.interpolate(sim, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.seg(torch.cat([skip * (1 + gain) + shift, up], dim=1))
        return heat, logits, sim

    def forward(self, image, audio):
        skip, v = self.features(image)
        heat, logits, sim = self.heads(skip, v, self.embed_audio(audio))
        mask = torch.sigmoid(logits)
        return object_map(heat, mask), mask, sim


def object_map(heat, mask):
    """The localizer's map (stride 8) upsampled to the mask's raster and weighted by the mask."""
    return F.interpolate(heat, size=mask.shape[-2:], mode="bilinear", align_corners=False) * mask


OUTPUTS = ["heatmap", "mask", "similarity"]


def onnx_metadata(cfg: AVNetConfig) -> dict:
    d = asdict(cfg)
    d["image_size"] = list(cfg.image_size)
    return {"kind": "av", **d}


def export_onnx(model: AVNet, path, opset: int = 17) -> dict:
    """Write ``model`` as ONNX with its avstream metadata; return the metadata."""
    import onnx

    from ..engines.features import n_frames

    cfg = model.cfg
    model = model.eval()
    h, w = cfg.image_size
    t = n_frames(cfg.audio_samples, cfg.n_fft, cfg.hop)
    args = (torch.zeros(1, 3, h, w), torch.zeros(1, 1, cfg.n_mels, t))
    torch.onnx.export(model, args, str(path), input_names=["image", "audio"], output_names=OUTPUTS,
                      opset_version=opset, dynamo=False)
    meta = onnx_metadata(cfg)
    m = onnx.load(str(path))
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = "avstream." + k, json.dumps(v)
    onnx.save(m, str(path))
    return meta


def save_checkpoint(model: AVNet, path, extra=None) -> None:
    cfg = asdict(model.cfg)
    cfg["image_size"] = list(model.cfg.image_size)
    torch.save({"config": cfg, "state": model.state_dict(), **(extra or {})}, str(path))


def load_checkpoint(path) -> AVNet:
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    cfg = dict(ckpt["config"])
    cfg["image_size"] = tuple(cfg["image_size"])
    model = AVNet(AVNetConfig(**cfg))
    model.load_state_dict(ckpt["state"])
    return model.eval()
