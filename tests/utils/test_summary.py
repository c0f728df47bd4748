"""jaxmodule.utils.summary: torchinfo-like table built with forward hooks."""

from __future__ import annotations

import jax.numpy as jnp
import jaxmodule
import numpy as np
import torch
from jaxmodule import nn
from jaxmodule.utils import summary


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(100, 6)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        h = self.fc(self.flat(self.block(x)))
        return self.drop(h), h.sum(1)


EXPECTED = """\
================================================================================
Layer (type:depth-idx)                  Output Shape             Param #
================================================================================
Net                                     [[2, 6], [2]]            --
├─Block: 1-1                            [2, 4, 5, 5]             --
│    └─Conv2d: 2-1                      [2, 4, 5, 5]             112
│    └─BatchNorm2d: 2-2                 [2, 4, 5, 5]             8
├─Flatten: 1-2                          [2, 100]                 --
├─Linear: 1-3                           [2, 6]                   606
├─Dropout: 1-4                          [2, 6]                   --
================================================================================
Total params: 726
Trainable params: 720
Non-trainable params: 6
================================================================================
Input size (MB): 0.00
Params size (MB): 0.00
Buffers size (MB): 0.00
Estimated Total Size (MB): 0.00
================================================================================"""


def test_table_totals_and_no_side_effects():
    model = Net()
    model.fc.bias.requires_grad = False
    mean_before = model.block.bn.running_mean._value
    rng_before = np.asarray(jaxmodule.default_generator.get_state())
    s = summary(model, jnp.ones((2, 3, 5, 5)))
    assert str(s) == EXPECTED
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (726, 720, 6)
    # running_mean, running_var (4 floats each) and num_batches_tracked (int32 without x64)
    assert s.param_bytes == 726 * 4 and s.buffer_bytes == (4 + 4) * 4 + 4
    assert s.input_bytes == 2 * 3 * 5 * 5 * 4
    assert [layer.name for layer in s.layers] == [
        "",
        "block",
        "block.conv",
        "block.bn",
        "flat",
        "fc",
        "drop",
    ]
    # training-mode forward ran, but buffers, the generator and the hooks are as before
    assert model.block.bn.running_mean._value is mean_before
    np.testing.assert_array_equal(np.asarray(jaxmodule.default_generator.get_state()), rng_before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_totals_match_torch_and_depth_limit():
    model = Net()
    tmodel = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(100, 6),
    )
    s = summary(model, jnp.ones((1, 3, 5, 5)), depth=1)
    assert s.total_params == sum(p.numel() for p in tmodel.parameters())
    assert max(layer.depth for layer in s.layers) == 1
    assert "Conv2d" not in str(s)
