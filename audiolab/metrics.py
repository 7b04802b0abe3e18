"""Signal-level quality measures (SNR and SI-SDR from torchmetrics; classification metrics
in :mod:`audiolab.classification`)."""

from __future__ import annotations

import torch


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``10 log10(Σ s² / Σ (s - ŝ)²)`` in dB over the last axis."""
    from torchmetrics.functional.audio import signal_noise_ratio

    reference, estimate = torch.as_tensor(reference), torch.as_tensor(estimate)
    if reference.shape != estimate.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, estimate {estimate.shape}")
    return signal_noise_ratio(estimate, reference)


def spectral_convergence(target_mag: torch.Tensor, estimate_mag: torch.Tensor) -> torch.Tensor:
    """``‖|S| - |Ŝ|‖_F / ‖|S|‖_F`` over the last two axes (0 is perfect; lower is better).

    The measure used to judge phase reconstruction such as Griffin–Lim: it compares magnitude
    spectrograms only, since many waveforms share one magnitude.
    """
    if target_mag.shape != estimate_mag.shape:
        raise ValueError(f"shapes differ: {target_mag.shape} vs {estimate_mag.shape}")
    num = torch.linalg.matrix_norm(target_mag - estimate_mag)
    return num / torch.linalg.matrix_norm(target_mag).clamp_min(1e-20)


def si_sdr_db(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB over the last axis (torchmetrics).

    With both signals made zero-mean, the reference is scaled to best fit the estimate,
    ``s_t = (⟨ŝ, s⟩ / ‖s‖²) s``, and everything else is distortion, ``e = ŝ − s_t``:
    ``SI-SDR = 10 log10(‖s_t‖² / ‖e‖²)`` (Le Roux et al., 2019). Unlike the SNR it does not
    reward or punish a change of gain, which a mask-based enhancer makes freely.
    """
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    reference, estimate = torch.as_tensor(reference), torch.as_tensor(estimate)
    if reference.shape != estimate.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, estimate {estimate.shape}")
    return scale_invariant_signal_distortion_ratio(estimate, reference, zero_mean=True)
