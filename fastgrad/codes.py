"""The one table of integer codes and tensor ids that the CPU and CUDA kernels share.

Kernels receive small integers, never strings; this module is where each integer
is given its meaning. Python code lowers a spec into these codes in one place
(:mod:`fastgrad.lowering`); kernels import the names from here, and no module
writes the numbers themselves.

Tensor ids are part of trial identity: tensor t of trial k of seed s is drawn
from the stream ``stream_key(s, k, t)`` (:mod:`fastgrad.rng`). Changing an id
changes every trial that uses it.
"""

from __future__ import annotations

# How a weight or bias tensor is drawn (the ``kind`` of an initialiser).
NORMAL, UNIFORM, ORTHOGONAL, IDENTITY, CONSTANT, SPECTRAL = range(6)
FACTORED_KINDS = (ORTHOGONAL, SPECTRAL)
"""Kinds that need a matrix factorisation (QR, eigenvalues): compiled only into kernels that use them."""

# Chain biases: drawn normal, constant, or centred (b_l = -w_l a_{l-1}, so every z_l = 0).
CHAIN_NORMAL, CHAIN_CONSTANT, CHAIN_CENTERED = 0, 1, -1

# Losses of the statistics kernels. MLP: mse against N(0, 1) targets, or the probe
# (a random back-projection g). RNN: mse of h_S, mse summed over every step, or the probe.
MLP_MSE, MLP_PROBE = 0, 1
RNN_LAST, RNN_ALL, RNN_PROBE = 0, 1, 2
# Training's per-step read-out (sequence targets): y[t] holds the loss's direct term dLoss/dh_t itself.
RNN_DIRECT = 3
# Losses of training: mse, or softmax cross-entropy on the logits.
TRAIN_MSE, TRAIN_XENT = 0, 2

# Optimisers of training, each in PyTorch's form: SGD, SGD with momentum, with Nesterov momentum, Adam, RMSprop.
SGD, MOMENTUM, NESTEROV, ADAM, RMSPROP = 0, 1, 2, 3, 4

# Tensor ids of an MLP trial: the inputs, the targets (or probes), then W and b of
# layer l (0-based) are tensors MLP_W0 + 2 l and MLP_B0 + 2 l.
MLP_X, MLP_Y, MLP_W0, MLP_B0 = 0, 1, 2, 3



# Tensor ids of a transformer trial: x, y, then block l's (0-based) W_q, W_k, W_v, W_o, W_1, W_2 are
# TRANSFORMER_W0 + 6 l + 0 .. 5; where its norms sit: none, inside the branches (pre), after the sums (post).
TRANSFORMER_X, TRANSFORMER_Y, TRANSFORMER_W0, NORM_NONE, NORM_PRE, NORM_POST = 0, 1, 2, 0, 1, 2
# Training's read-out W_r of a transformer: far above any block's tensors (block l < 166,666).
TRANSFORMER_READOUT = 999_999

# Tensor ids of an RNN trial; training adds the read-out W_o.
RNN_X, RNN_Y, RNN_WHH, RNN_WXH, RNN_B, RNN_WO = 0, 1, 2, 3, 4, 5

# Tensor ids of an LSTM or GRU trial: gate k's recurrent block is GATED_WH + k and its input
# block GATED_WX + k (k < 4); the biases GATED_B (LSTM's b, GRU's b_ih) and GATED_BH (GRU's
# b_hh); the uniform numbers of the chrono init GATED_CHRONO.
GATED_X, GATED_Y, GATED_WH, GATED_WX, GATED_B, GATED_BH, GATED_CHRONO = 0, 1, 2, 6, 10, 11, 12
# Training's read-out W_o of an LSTM or GRU (RNN_WO would be the LSTM's fourth recurrent block).
GATED_WO = 13
# How the memory gate's bias (LSTM forget gate, GRU update gate) is set: a constant, or chrono.
MEMORY_CONSTANT, MEMORY_CHRONO = 0, 1

# Tensor ids of a chain trial: (x, y) from one pair, the 2L numbers w_1..w_L, b_1..b_L from another.
CHAIN_XY, CHAIN_WB = 0, 1

# Training: epoch e's visiting order of the data comes from tensor ORDER + e.
ORDER = 1_000_000

# A PyTorch trial (fastgrad.torch_run): the seed of its torch.Generator is the key of this stream.
TORCH_GENERATOR = 20
