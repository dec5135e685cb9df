"""A ResNet18-sized image encoder (torchvision is not importable beside this torch): the size
of the image tower in EZ-VSL and its kin, for the engine benchmark at 224x224."""
from __future__ import annotations

from torch import nn


class _Basic(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
                               nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(True)

    def forward(self, x):
        return self.relu(self.a(x) + self.skip(x))


class ResNet18Encoder(nn.Module):
    """ResNet18's layers up to the last stage: (B, 3, 224, 224) -> (B, 512, 7, 7), 11.2M parameters."""

    def __init__(self):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(True), nn.MaxPool2d(3, 2, 1)]
        c = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_Basic(c, c_out, stride), _Basic(c_out, c_out, 1)]
            c = c_out
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)
