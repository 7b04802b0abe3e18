"""Streaming enhancement: a causal mask model run chunk by chunk, equal to the offline run.

Taught in chapter 9 (From notebook to product). Chapter 4's mask LSTM is bidirectional and
normalises each utterance by its own mean and standard deviation: it needs the whole recording
before it can output the first sample. A model that runs on a live stream must be **causal**:
its output at frame ``m`` may depend on frames ``≤ m`` only.

- :class:`CausalMaskLSTM`: log power → per-frame layer norm (over the frequency bins, so each
  frame is normalised by itself) → unidirectional LSTM → one sigmoid per bin. ``model(Y)``
  is the offline call (it trains with :func:`audiolab.enhancement.train_mask_model`);
  :meth:`CausalMaskLSTM.step` carries the LSTM state from one call to the next.
- :class:`StreamingDenoiser`: takes any number of samples at a time, frames them exactly as
  :func:`audiolab.features.stft` does (Hann window, ``center=True`` with zero padding),
  applies the mask and overlap-adds as :func:`audiolab.features.istft` does, emitting each
  output sample as soon as no later frame can change it.
- :func:`enhance_offline`: the same model on the whole signal at once (the reference that the
  stream must equal), and :func:`algorithmic_latency` in samples.

Examples
--------
::

    model = CausalMaskLSTM()                       # train it like chapter 4's model
    stream = StreamingDenoiser(model)
    out = [stream.process(chunk) for chunk in chunks]   # chunks (batch, samples)
    out.append(stream.finish())
    y = torch.cat(out, dim=-1)[..., : length]      # == enhance_offline(model, x)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiolab import features

#: STFT of the streaming denoiser: 32 ms windows, 8 ms hop at 16 kHz, as chapter 4's model.
N_FFT, HOP = 512, 128

State = tuple[Tensor, Tensor]


class CausalMaskLSTM(nn.Module):
    """Noisy STFT ``(batch, bins, frames)`` → mask in [0, 1], causal in time.

    Parameters
    ----------
    bins
        Frequency bins of the STFT (``n_fft // 2 + 1``).
    hidden, layers
        Size and depth of the unidirectional LSTM.
    """

    def __init__(self, bins: int = N_FFT // 2 + 1, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(bins)
        self.rnn = nn.LSTM(bins, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, bins)

    def forward(self, Y: Tensor) -> Tensor:
        """The mask for every frame of ``Y`` (complex, ``(batch, bins, frames)``)."""
        return self.step(Y)[0]

    def step(self, Y: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """The mask for the frames of ``Y``, continuing from ``state`` (``None``: start).

        Returns the mask ``(batch, bins, frames)`` and the LSTM state ``(h, c)`` after the last
        frame, to pass to the next call.
        """
        return self.mask_from_log_power(torch.log(Y.abs().pow(2) + 1e-8), state)

    def mask_from_log_power(
        self, log_power: Tensor, state: State | None = None
    ) -> tuple[Tensor, State]:
        """:meth:`step` from ``log(|Y|² + 1e-8)`` ``(batch, bins, frames)``: real numbers
        only, the part of the model that is exported to ONNX (chapter 9)."""
        h, state = self.rnn(self.norm(log_power.transpose(1, 2)), state)
        return torch.sigmoid(self.head(h).float()).transpose(1, 2), state


def enhance_offline(model: CausalMaskLSTM, x: Tensor, n_fft: int = N_FFT, hop: int = HOP) -> Tensor:
    """Denoise whole signals ``x`` ``(batch, samples)`` at once (noisy phase); same shape."""
    Y = features.stft(x, n_fft, hop)
    with torch.no_grad():
        mask = model(Y)
    return features.istft(mask * Y, n_fft, hop, length=x.shape[-1])


def algorithmic_latency(n_fft: int = N_FFT, hop: int = HOP) -> int:
    """The algorithmic latency of :class:`StreamingDenoiser` in samples: one window, ``n_fft``.

    The output at time ``t`` is final once the last frame that covers ``t`` has been added:
    the frame that starts at or just before ``t``, which needs the input up to ``n_fft − 1``
    samples after its start. With the input arriving one hop at a time, the output therefore
    trails the input by ``n_fft − hop`` samples at every hop boundary, and the sample that
    arrives first in a hop waits longest, ``n_fft − 1`` samples. The conventional figure, quoted
    here, is the window length (512 samples, 32 ms at 16 kHz for the default STFT).
    Computation time comes on top of it (the real-time factor, measured in chapter 9).
    """
    if n_fft % hop:
        raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop})")
    return n_fft


class StreamingDenoiser:
    """Run a :class:`CausalMaskLSTM` (anything with ``step(Y, state)``) on a live stream.

    Feed :meth:`process` chunks ``(batch, samples)`` of any length (also shorter than a hop);
    each call returns the output samples that are final. :meth:`finish` ends the stream (it
    pads the end as ``center=True`` does) and returns the rest. The concatenated output,
    cut to the input's length, equals :func:`enhance_offline` to float rounding.
    """

    def __init__(self, model: nn.Module, n_fft: int = N_FFT, hop: int = HOP) -> None:
        if n_fft % 2 or n_fft % hop:
            raise ValueError(f"n_fft ({n_fft}) must be even and a multiple of hop ({hop})")
        self.model, self.n_fft, self.hop = model, n_fft, hop
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        self.window = features.hann_window(n_fft, device)
        self.batch: int | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next chunk starts a new one."""
        self.batch = None
        self.state: State | None = None
        self.pending = torch.zeros(0)  # input samples not yet consumed by a frame
        self.acc = torch.zeros(0)  # overlap-add sums not yet final
        self.env = torch.zeros(0)  # their window-squared envelope
        self.to_drop = self.n_fft // 2  # the first n_fft/2 outputs are before time zero
        self.finished = False

    def _start(self, chunk: Tensor) -> None:
        self.batch = chunk.shape[0]
        z = dict(dtype=chunk.dtype, device=chunk.device)
        self.pending = torch.zeros(self.batch, self.n_fft // 2, **z)  # center=True padding
        self.acc = torch.zeros(self.batch, self.n_fft - self.hop, **z)
        self.env = torch.zeros(self.n_fft - self.hop, **z)

    @torch.no_grad()
    def process(self, chunk: Tensor) -> Tensor:
        """Add ``chunk`` ``(batch, samples)`` to the stream; the output samples now final."""
        if self.finished:
            raise RuntimeError("this stream has finished; call reset() to start another")
        if chunk.ndim != 2:
            raise ValueError(f"chunk must have shape (batch, samples), got {tuple(chunk.shape)}")
        if self.batch is None:
            self._start(chunk)
        elif chunk.shape[0] != self.batch:
            raise ValueError(
                f"this stream has {self.batch} channel(s), the chunk {chunk.shape[0]}: "
                "keep the batch size, or reset() to start a new stream"
            )
        self.pending = torch.cat([self.pending, chunk.to(self.pending)], dim=-1)
        return self._frames()

    @torch.no_grad()
    def finish(self) -> Tensor:
        """End the stream; the remaining output samples."""
        if self.batch is None:
            raise RuntimeError("nothing was streamed: call process() first")
        tail = torch.zeros(self.batch, self.n_fft // 2).to(self.pending)
        self.pending = torch.cat([self.pending, tail], dim=-1)
        out = self._frames()
        rest = self.acc / self.env.clamp_min(1e-11)
        self.finished = True
        return torch.cat([out, self._drop(rest)], dim=-1)

    def _drop(self, out: Tensor) -> Tensor:
        cut = min(self.to_drop, out.shape[-1])
        self.to_drop -= cut
        return out[..., cut:]

    def _frames(self) -> Tensor:
        n, hop = self.n_fft, self.hop
        count = 1 + (self.pending.shape[-1] - n) // hop if self.pending.shape[-1] >= n else 0
        if count == 0:
            return self.pending.new_zeros(self.batch, 0)
        frames = self.pending[..., : (count - 1) * hop + n].unfold(-1, n, hop)  # (B, F, n)
        self.pending = self.pending[..., count * hop :]
        Y = torch.fft.rfft(frames * self.window, dim=-1).transpose(1, 2)  # (B, bins, F)
        mask, self.state = self.model.step(Y, self.state)
        y = torch.fft.irfft((mask * Y).transpose(1, 2), n=n, dim=-1) * self.window
        acc = torch.cat([self.acc, self.acc.new_zeros(self.batch, count * hop)], dim=-1)
        env = torch.cat([self.env, self.env.new_zeros(count * hop)])
        square = self.window.pow(2)
        for f in range(count):
            acc[..., f * hop : f * hop + n] += y[:, f]
            env[f * hop : f * hop + n] += square
        done = count * hop
        out = acc[..., :done] / env[:done].clamp_min(1e-11)
        self.acc, self.env = acc[..., done:], env[done:]
        return self._drop(out)


def stream(model: nn.Module, x: Tensor, chunk: int, n_fft: int = N_FFT, hop: int = HOP) -> Tensor:
    """Denoise ``x`` ``(batch, samples)`` through a :class:`StreamingDenoiser` in chunks of
    ``chunk`` samples; the output has the input's length."""
    denoiser = StreamingDenoiser(model, n_fft, hop)
    parts = [denoiser.process(x[..., i : i + chunk]) for i in range(0, x.shape[-1], chunk)]
    parts.append(denoiser.finish())
    return torch.cat(parts, dim=-1)[..., : x.shape[-1]]
