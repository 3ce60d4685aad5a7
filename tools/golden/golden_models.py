"""Model sections of the golden fixtures: TINY random AudioLDM2 diffusion-core
components (UNet, VAE, vocoder, DDIM scheduler), saved with ``save_pretrained`` in the
real diffusers layout next to golden.safetensors, plus reference tensors. The ``prior``
section chains the VAE decoder and the vocoder as AudioLDM2Pipeline does (latents ->
cropped waveform).

Every section is ``section_xxx(rng) -> dict[str, torch.Tensor]`` like the DSP ones.
make_golden.py calls ``configure(out_dir, variant)`` first; the sections then write
``OUT/{unet,vae,vocoder,scheduler}/``, ``OUT/model_index.json`` and
``OUT/vocoder_bin/`` (the vocoder again, as a PyTorch pickle ``pytorch_model.bin``).

Weights: every parameter (and the vocoder's mean/scale buffers) is redrawn from the
section's numpy Generator (see ``randomize``), rounded to float32 and saved. The models
are then RELOADED from the saved files and the references are computed in float64
(``.double()``) from those float32 weights and float32-rounded inputs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

F64 = torch.float64

# Set by make_golden.configure() before the sections run.
CONTEXT = {"out": None, "variant": "default"}


def configure(out, variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    CONTEXT["out"] = None if out is None else Path(out)
    CONTEXT["variant"] = variant


def cfg() -> dict:
    return VARIANTS[CONTEXT["variant"]]


# ---------------------------------------------------------------------------
# Tiny configs. Structure follows /work/shared/audioldm2-music/*/config.json.
# ---------------------------------------------------------------------------
FULL_SCHEDULER = {  # audioldm2-music/scheduler/scheduler_config.json
    "beta_end": 0.0195,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.0015,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.995,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "thresholding": False,
    "timestep_spacing": "leading",
    "trained_betas": None,
}

UNET_COMMON = dict(
    act_fn="silu",
    class_embed_type=None,
    class_embeddings_concat=False,
    conv_in_kernel=3,
    conv_out_kernel=3,
    downsample_padding=1,
    flip_sin_to_cos=True,
    freq_shift=0,
    layers_per_block=2,
    mid_block_scale_factor=1,
    mid_block_type="UNetMidBlock2DCrossAttn",
    norm_eps=1e-5,
    num_attention_heads=None,
    num_class_embeds=None,
    only_cross_attention=False,
    projection_class_embeddings_input_dim=None,
    resnet_time_scale_shift="default",
    time_cond_proj_dim=None,
    time_embedding_act_fn=None,
    time_embedding_dim=None,
    time_embedding_type="positional",
    timestep_post_act=None,
    transformer_layers_per_block=1,
    upcast_attention=False,
    use_linear_projection=False,
)

VAE_COMMON = dict(
    act_fn="silu",
    in_channels=1,
    out_channels=1,
    layers_per_block=2,
    force_upcast=True,
    latents_mean=None,
    latents_std=None,
    mid_block_add_attention=True,
    shift_factor=None,
    use_post_quant_conv=True,
    use_quant_conv=True,
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
)

VARIANTS = {
    "default": {
        "unet": dict(
            UNET_COMMON,
            in_channels=8,
            out_channels=8,
            sample_size=[16, 8],
            block_out_channels=[4, 6, 8],
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            norm_num_groups=2,
            attention_head_dim=2,  # = number of heads (diffusers naming quirk)
            cross_attention_dim=[[None, 12, 20]] * 3,
        ),
        # UNet inputs: latent (T, F) for b1/b2, and a size that is not a multiple of
        # 2**num_upsamplers for unet.odd (exercises the explicit upsample_size path)
        "unet_tf": (16, 8),
        "unet_odd_tf": (10, 6),
        "gpt2_tokens": 8,
        "t5_tokens": 5,
        "t5_lengths_b2": [3, 5],  # encoder_attention_mask_1 rows (ones then zeros)
        "t5_lengths_odd": [2],
        "vae": dict(
            VAE_COMMON,
            block_out_channels=[4, 8, 8],
            latent_channels=8,
            norm_num_groups=2,
            sample_size=64,
            scaling_factor=0.4110932946205139,
        ),
        "mel_t": 24,
        "mel_bins": 16,
        "vocoder": dict(
            model_in_dim=16,
            sampling_rate=16000,
            upsample_initial_channel=32,
            upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4],
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            initializer_range=0.01,
            leaky_relu_slope=0.1,
            normalize_before=False,
        ),
        "voc_frames": 6,
        "prior_latent_t": 7,  # -> 28 mel frames
        "batch": 2,
    },
    "alt": {
        "unet": dict(
            UNET_COMMON,
            in_channels=4,
            out_channels=4,
            sample_size=[8, 8],
            block_out_channels=[4, 6, 8, 10],
            down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 3,
            up_block_types=["CrossAttnUpBlock2D"] * 3 + ["UpBlock2D"],
            norm_num_groups=2,
            # per-block head counts; head dims 6/2=3, 8/1=8, 10/2=5 (entry 0 unused:
            # DownBlock2D/UpBlock2D have no attention)
            attention_head_dim=[1, 2, 1, 2],
            cross_attention_dim=[[None, 10, 6]] * 4,
        ),
        "unet_tf": (8, 8),
        "unet_odd_tf": (12, 5),
        "gpt2_tokens": 8,
        "t5_tokens": 4,
        "t5_lengths_b2": [4, 1],
        "t5_lengths_odd": [3],
        "vae": dict(
            VAE_COMMON,
            block_out_channels=[6, 6, 9],
            latent_channels=4,
            norm_num_groups=3,
            sample_size=32,
            scaling_factor=0.7312,
        ),
        "mel_t": 20,
        "mel_bins": 12,
        "vocoder": dict(
            model_in_dim=12,
            sampling_rate=16000,
            upsample_initial_channel=24,
            upsample_rates=[4, 3, 2],
            upsample_kernel_sizes=[8, 7, 4],
            resblock_kernel_sizes=[3, 5],
            resblock_dilation_sizes=[[1, 2], [1, 3, 5]],
            initializer_range=0.01,
            leaky_relu_slope=0.2,
            normalize_before=True,
        ),
        "voc_frames": 5,
        "prior_latent_t": 11,  # -> 44 mel frames
        "batch": 2,
    },
}

# Init scale (see README): weights ~ N(0, (W_GAIN / sqrt(fan_in))^2), biases ~ N(0, B_STD^2),
# norm affine weight ~ 1 + N(0, NORM_STD^2), norm bias ~ N(0, NORM_STD^2).
W_GAIN = 1.0
VOC_POST_STD = 0.8  # vocoder: conv_post is rescaled so its output (pre-tanh) has this std
B_STD = 0.1
NORM_STD = 0.2


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def normal(rng: np.random.Generator, shape, std=1.0, mean=0.0) -> torch.Tensor:
    """float32-rounded N(mean, std^2) draw as a float32 tensor."""
    x = mean + std * rng.standard_normal(tuple(shape))
    return torch.from_numpy(np.ascontiguousarray(x.astype(np.float32)))


def randomize(model: nn.Module, rng: np.random.Generator, gain: float = W_GAIN) -> None:
    """Redraws EVERY parameter of ``model`` (in named_modules order) so that no default
    init (zero biases, unit norms, transformers' N(0, 0.01) convs) hides a path; raises
    if a parameter is left untouched."""
    done = set()
    with torch.no_grad():
        for _, m in model.named_modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(normal(rng, m.weight.shape, gain / np.sqrt(fan_in)))
            elif isinstance(m, nn.ConvTranspose1d):
                # weight (in, out, k): each output sample sees in * k / stride taps
                fan_in = m.weight.shape[0] * m.weight.shape[2] / m.stride[0]
                m.weight.copy_(normal(rng, m.weight.shape, gain / np.sqrt(fan_in)))
            elif isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(normal(rng, m.weight.shape, NORM_STD, 1.0))
            else:
                for name, p in m.named_parameters(recurse=False):
                    raise RuntimeError(f"unhandled parameter {name} in {type(m).__name__}")
                continue
            if getattr(m, "bias", None) is not None:
                std = NORM_STD if isinstance(m, (nn.GroupNorm, nn.LayerNorm)) else B_STD
                m.bias.copy_(normal(rng, m.bias.shape, std))
            for p in m.parameters(recurse=False):
                done.add(id(p))
    missing = [n for n, p in model.named_parameters() if id(p) not in done]
    if missing:
        raise RuntimeError(f"parameters not re-randomised: {missing}")


def out_dir(sub: str):
    out = CONTEXT["out"]
    return None if out is None else out / sub


def save_and_reload(model, cls, sub: str):
    """save_pretrained into OUT/sub (if an output dir is set) and reload from it, so the
    references are computed from exactly the saved float32 weights."""
    d = out_dir(sub)
    if d is None:
        return copy.deepcopy(model)
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(d), safe_serialization=True)
    for f in d.iterdir():
        f.chmod(0o644)
    re = cls.from_pretrained(str(d))
    for (n1, a), (n2, b) in zip(model.state_dict().items(), re.state_dict().items()):
        assert n1 == n2 and torch.equal(a, b), f"{sub}: {n1} did not round-trip"
    return re


def f32(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.astype(np.float32)))


def mask_rows(lengths, n_tokens) -> torch.Tensor:
    m = torch.zeros(len(lengths), n_tokens)
    for i, n in enumerate(lengths):
        m[i, :n] = 1.0
    return m


# ---------------------------------------------------------------------------
# UNet
# ---------------------------------------------------------------------------
def unet_class():
    try:
        from diffusers import AudioLDM2UNet2DConditionModel
    except ImportError:  # pragma: no cover
        from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel
    return AudioLDM2UNet2DConditionModel


def unet_inputs(rng, c, batch, tf, t5_lengths):
    ucfg = c["unet"]
    gpt2_w, t5_w = ucfg["cross_attention_dim"][0][1], ucfg["cross_attention_dim"][0][2]
    T, F = tf
    d = {
        "sample": f32(rng.standard_normal((batch, ucfg["in_channels"], T, F))),
        # distinct integer timesteps, as the DDIM scheduler produces them (int64)
        "timestep": torch.from_numpy(
            np.sort(rng.choice(np.arange(1, 1000), size=batch, replace=False))[::-1].copy()),
        "encoder_hidden_states": f32(rng.standard_normal((batch, c["gpt2_tokens"], gpt2_w))),
        "encoder_hidden_states_1": f32(rng.standard_normal((batch, c["t5_tokens"], t5_w))),
    }
    if t5_lengths is not None:
        d["encoder_attention_mask_1"] = mask_rows(t5_lengths, c["t5_tokens"])
    return d


def unet_call(unet, inp, dtype):
    kw = dict(
        encoder_hidden_states=inp["encoder_hidden_states"].to(dtype),
        encoder_hidden_states_1=inp["encoder_hidden_states_1"].to(dtype),
    )
    if "encoder_attention_mask_1" in inp:
        kw["encoder_attention_mask_1"] = inp["encoder_attention_mask_1"].to(dtype)
    return unet(inp["sample"].to(dtype), inp["timestep"], **kw).sample


def section_unet(rng: np.random.Generator) -> dict:
    c = cfg()
    cls = unet_class()
    with torch.random.fork_rng():
        torch.manual_seed(0)  # only the default init, all of which is overwritten
        unet = cls(**c["unet"])
    randomize(unet, rng)
    unet = save_and_reload(unet, cls, "unet").eval()
    u64 = copy.deepcopy(unet).double()

    out = {}
    cases = {
        "b1": unet_inputs(rng, c, 1, c["unet_tf"], None),
        "b2": unet_inputs(rng, c, 2, c["unet_tf"], c["t5_lengths_b2"]),
        "odd": unet_inputs(rng, c, 1, c["unet_odd_tf"], c["t5_lengths_odd"]),
    }
    with torch.no_grad():
        for case, inp in cases.items():
            y = unet_call(u64, inp, F64)
            y32 = unet_call(unet, inp, torch.float32)
            STATS[f"unet.{case}: max|f32 - f64|"] = float((y32.double() - y).abs().max())
            for k, v in inp.items():
                out[f"unet.{case}.{k}"] = v
            out[f"unet.{case}.out"] = y
        # sensitivity of the b2 output to each input (every path must matter)
        inp = cases["b2"]
        y = out["unet.b2.out"]
        for k in ["encoder_hidden_states", "encoder_hidden_states_1", "encoder_attention_mask_1"]:
            alt = dict(inp)
            alt[k] = torch.ones_like(inp[k]) if k.endswith("mask_1") else inp[k].flip(0)
            STATS[f"unet.b2 rel. change, {k} altered"] = rel(unet_call(u64, alt, F64), y)
        alt = dict(inp)
        alt["timestep"] = inp["timestep"].flip(0)
        STATS["unet.b2 rel. change, timesteps swapped"] = rel(unet_call(u64, alt, F64), y)
    return out


# ---------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------
def section_vae(rng: np.random.Generator) -> dict:
    from diffusers import AutoencoderKL

    c = cfg()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = AutoencoderKL(**c["vae"])
    randomize(vae, rng)
    vae = save_and_reload(vae, AutoencoderKL, "vae").eval()
    BUILT["vae"] = vae
    v64 = copy.deepcopy(vae).double()

    B, T, M = c["batch"], c["mel_t"], c["mel_bins"]
    down = 2 ** (len(c["vae"]["block_out_channels"]) - 1)
    z = f32(rng.standard_normal((B, c["vae"]["latent_channels"], T // down, M // down)))
    zz = z.double().requires_grad_(True)
    y = v64.decode(zz).sample
    cot = f32(rng.standard_normal(tuple(y.shape)))
    (g,) = torch.autograd.grad((y * cot.double()).sum(), zz)
    with torch.no_grad():
        STATS["vae.decode: max|f32 - f64|"] = float((vae.decode(z).sample.double() - y).abs().max())

    # encoder input: a log-mel-like field, ln-magnitudes around -4 +- 2
    mel = f32(-4.0 + 2.0 * rng.standard_normal((B, 1, T, M)))
    with torch.no_grad():
        dist = v64.encode(mel.double()).latent_dist
        logvar = dist.logvar
        assert bool(((logvar > -30) & (logvar < 20)).all()), "logvar clamp active"
    return {
        "vae.decode.in": z,
        "vae.decode.out": y.detach(),
        "vae.decode.cotangent": cot,
        "vae.decode.grad_in": g,
        "vae.encode.in": mel,
        "vae.encode.mean": dist.mean,
        "vae.encode.std": dist.std,
    }


# ---------------------------------------------------------------------------
# Vocoder
# ---------------------------------------------------------------------------
def section_vocoder(rng: np.random.Generator) -> dict:
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    c = cfg()
    vc = dict(c["vocoder"])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        voc = SpeechT5HifiGan(SpeechT5HifiGanConfig(**vc))
    randomize(voc, rng)
    if vc["normalize_before"]:
        with torch.no_grad():
            voc.mean.copy_(normal(rng, voc.mean.shape, 1.0, -4.0))
            voc.scale.copy_(torch.from_numpy(
                rng.uniform(0.5, 2.0, voc.scale.shape).astype(np.float32)))
    B, L, M = c["batch"], c["voc_frames"], vc["model_in_dim"]
    # log-mel-like input: ln-magnitudes around -4 +- 2 (like the VAE output)
    x = f32(-4.0 + 2.0 * rng.standard_normal((B, L, M)))
    calibrate_conv_post(voc, x)
    voc = save_and_reload(voc, SpeechT5HifiGan, "vocoder").eval()
    if vc["normalize_before"]:
        assert not torch.equal(voc.mean, torch.zeros_like(voc.mean)), "mean not saved"
    BUILT["vocoder"] = voc
    save_bin_copy(voc, "vocoder", "vocoder_bin")
    w64 = copy.deepcopy(voc).double()

    xx = x.double().requires_grad_(True)
    y = w64(xx)
    cot = f32(rng.standard_normal(tuple(y.shape)))
    (g,) = torch.autograd.grad((y * cot.double()).sum(), xx)
    with torch.no_grad():
        STATS["voc: max|f32 - f64|"] = float((voc(x).double() - y).abs().max())
        STATS["voc: fraction |out| > 0.99 (tanh saturated)"] = float((y.abs() > 0.99).double().mean())
        STATS["voc: unbatched out shape for in[0]"] = tuple(w64(xx[0]).shape)
    return {
        "voc.in": x,
        "voc.out": y.detach(),
        "voc.cotangent": cot,
        "voc.grad_in": g,
    }


def save_bin_copy(model, sub: str, bin_sub: str) -> None:
    """Writes ``model`` a second time as a PyTorch pickle into OUT/bin_sub
    (``config.json`` + ``pytorch_model.bin``), for the loader's .bin path, and checks
    with ``torch.load`` that it holds exactly the tensors of OUT/sub/model.safetensors
    (same names, dtypes, shapes and bits).

    transformers 5 dropped ``save_pretrained(..., safe_serialization=False)`` (it always
    writes safetensors; the argument is swallowed by ``**kwargs``), so this does what
    transformers 4 did for it: ``config.save_pretrained`` and
    ``torch.save(state_dict)`` (contiguous tensors, state_dict order) to
    ``pytorch_model.bin``. torch.save's zip container is deterministic (no timestamps)."""
    d, ref = out_dir(bin_sub), out_dir(sub)
    if d is None:
        return
    from safetensors.torch import load_file
    from transformers.utils import CONFIG_NAME, WEIGHTS_NAME

    assert WEIGHTS_NAME == "pytorch_model.bin" and CONFIG_NAME == "config.json"
    d.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(d))
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(sd, str(d / WEIGHTS_NAME))
    for f in d.iterdir():
        f.chmod(0o644)
    files = sorted(f.name for f in d.iterdir())
    assert files == [CONFIG_NAME, WEIGHTS_NAME], f"{bin_sub}: unexpected files {files}"
    assert (d / CONFIG_NAME).read_bytes() == (ref / CONFIG_NAME).read_bytes(), \
        f"{bin_sub}/config.json differs from {sub}/config.json"
    pt = torch.load(str(d / WEIGHTS_NAME), map_location="cpu", weights_only=True)
    st = load_file(str(ref / "model.safetensors"))
    assert sorted(pt) == sorted(st), f"{bin_sub}: tensor names differ"
    for k in st:
        a, b = pt[k], st[k]
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), \
            f"{bin_sub}: {k} differs from the safetensors copy"
    STATS[f"{bin_sub}: tensors identical to {sub}/model.safetensors"] = len(st)


def calibrate_conv_post(voc, x) -> None:
    """Random HiFi-GAN stacks drift (the resblock sums grow or shrink by stage), so the
    tanh would be either saturated or nearly constant. Rescale conv_post's weight and
    set its bias so that, on the fixture input, the pre-tanh signal has mean 0 and std
    VOC_POST_STD. Deterministic (float64 statistics, float32-rounded parameters)."""
    seen = {}
    h = voc.conv_post.register_forward_hook(lambda m, i, o: seen.update(inp=i[0]))
    with torch.no_grad():
        voc(x)
        h.remove()
        w, b = voc.conv_post.weight, voc.conv_post.bias
        p = nn.functional.conv1d(seen["inp"].double(), w.double(), None, padding=3)
        s = VOC_POST_STD / float(p.std())
        w.copy_((w.double() * s).float())
        b.copy_(torch.full_like(b, float(-s * p.mean())))


# ---------------------------------------------------------------------------
# Prior: latents -> audio as AudioLDM2Pipeline does it
# ---------------------------------------------------------------------------
def prior_models():
    """The tiny VAE and vocoder of this fixture dir: the ones the vae / vocoder sections
    built (and reloaded from OUT/vae, OUT/vocoder) in this run, else reloaded from the
    saved dirs (``--only prior`` on an existing fixture dir)."""
    from diffusers import AutoencoderKL
    from transformers import SpeechT5HifiGan

    c = cfg()
    vae, voc = BUILT.get("vae"), BUILT.get("vocoder")
    if vae is None:
        if out_dir("vae") is None or not (out_dir("vae") / "config.json").is_file():
            raise RuntimeError("prior: run the vae section first (no OUT/vae)")
        vae = AutoencoderKL.from_pretrained(str(out_dir("vae"))).eval()
    if voc is None:
        if out_dir("vocoder") is None or not (out_dir("vocoder") / "config.json").is_file():
            raise RuntimeError("prior: run the vocoder section first (no OUT/vocoder)")
        voc = SpeechT5HifiGan.from_pretrained(str(out_dir("vocoder"))).eval()
    # the saved dirs must be this variant's
    for k in ("block_out_channels", "latent_channels", "scaling_factor"):
        assert vae.config[k] == c["vae"][k], f"prior: OUT/vae is not variant {CONTEXT['variant']}"
    for k in ("model_in_dim", "upsample_rates"):
        assert getattr(voc.config, k) == c["vocoder"][k], \
            f"prior: OUT/vocoder is not variant {CONTEXT['variant']}"
    return vae, voc


def prior_decode(vae, voc, z, samples: int):
    """AudioLDM2Pipeline.__call__ step 8 (diffusers 0.42.1, pipeline_audioldm2.py):
    ``latents = 1 / vae.config.scaling_factor * latents``;
    ``mel = vae.decode(latents).sample`` (B, 1, T, bins);
    ``mel_spectrogram_to_waveform``: ``squeeze(1)`` then ``vocoder(mel)`` (B, samples);
    ``audio[:, :original_waveform_length]``."""
    latents = 1 / vae.config.scaling_factor * z
    mel = vae.decode(latents).sample
    if mel.dim() == 4:
        mel = mel.squeeze(1)
    audio = voc(mel)
    return audio[:, :samples]


class LeakyReluMargin:
    """Context manager recording the smallest |input| of every F.leaky_relu call (the
    vocoder's only kinks): statistics only, the computation is unchanged."""

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        rec = self
        self.min, self.n = float("inf"), 0

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if func is nn.functional.leaky_relu:
                    x = args[0].detach()
                    rec.min = min(rec.min, float(x.abs().min()))
                    rec.n += x.numel()
                return func(*args, **(kwargs or {}))

        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)
        return False


def section_prior(rng: np.random.Generator) -> dict:
    """Latents (pipeline scale, i.e. before the 1/scaling_factor) -> cropped waveform,
    through the tiny VAE decoder and vocoder of this fixture dir, with a crop length
    that is not a multiple of the vocoder hop."""
    c = cfg()
    vae, voc = prior_models()
    sf = vae.config.scaling_factor
    assert sf != 1.0, "prior: the VAE scaling_factor is 1, the fixture would not test it"
    v64, w64 = copy.deepcopy(vae).double(), copy.deepcopy(voc).double()

    down = 2 ** (len(c["vae"]["block_out_channels"]) - 1)
    t = c["prior_latent_t"]
    f = c["mel_bins"] // down
    hop = int(np.prod(c["vocoder"]["upsample_rates"]))
    frames = t * down
    samples = hop * frames - 37
    z = f32(rng.standard_normal((c["batch"], c["vae"]["latent_channels"], t, f)))

    zz = z.double().requires_grad_(True)
    with LeakyReluMargin() as kinks:
        y = prior_decode(v64, w64, zz, samples)
    with torch.no_grad():
        full = w64(v64.decode(1 / sf * zz).sample.squeeze(1))
    assert y.shape == (c["batch"], samples) and full.shape[1] > samples, (y.shape, full.shape)
    cot = f32(rng.standard_normal(tuple(y.shape)))
    (g,) = torch.autograd.grad((y * cot.double()).sum(), zz)

    # float32 run of the same chain, for scale (what a float32 port can expect)
    z32 = z.clone().requires_grad_(True)
    y32 = prior_decode(vae, voc, z32, samples)
    (g32,) = torch.autograd.grad((y32 * cot).sum(), z32)
    STATS["prior.decode: max|f32 - f64|"] = float((y32.detach().double() - y).abs().max())
    STATS["prior.decode: grad_in max|f32 - f64|"] = float((g32.double() - g).abs().max())
    STATS["prior.decode: min |leaky_relu input| (f64), of n"] = (kinks.min, kinks.n)
    STATS["prior.decode: mel frames, uncropped samples"] = (frames, int(full.shape[1]))
    STATS["prior.decode: fraction |out| > 0.99"] = float((y.abs() > 0.99).double().mean())
    return {
        "prior.decode.in": z,
        "prior.decode.samples": torch.tensor([float(samples)]),
        "prior.decode.out": y.detach(),
        "prior.decode.cotangent": cot,
        "prior.decode.grad_in": g,
    }


# ---------------------------------------------------------------------------
# Scheduler + model_index.json
# ---------------------------------------------------------------------------
def section_scheduler(rng: np.random.Generator) -> dict:
    """Saves OUT/scheduler (full-size DDIM config) and OUT/model_index.json. Records
    the schedule and one DDIM step (eta 0) for the scheduler port."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(FULL_SCHEDULER)
    d = out_dir("scheduler")
    if d is not None:
        sched.save_pretrained(str(d))
        (d / "scheduler_config.json").chmod(0o644)
        sched = DDIMScheduler.from_pretrained(str(d))
        write_model_index(CONTEXT["out"])

    steps = 50
    sched.set_timesteps(steps)
    ts = sched.timesteps.clone()
    i = 3
    t = int(ts[i])
    x = torch.from_numpy(rng.standard_normal((2, 4, 3, 5))).to(torch.float32)
    eps = torch.from_numpy(rng.standard_normal((2, 4, 3, 5))).to(torch.float32)
    prev = sched.step(eps.double(), t, x.double(), eta=0.0).prev_sample
    return {
        "sched.alphas_cumprod": sched.alphas_cumprod.double(),
        "sched.timesteps_50": ts.double(),
        "sched.step.t": torch.tensor([float(t)]),
        "sched.step.sample": x,
        "sched.step.model_output": eps,
        "sched.step.prev_sample": prev,
    }


def write_model_index(out: Path) -> None:
    import diffusers

    # every component of the real cvssp/audioldm2-music model_index.json; the text ones
    # (and feature_extractor) are written by golden_text.section_text, which runs after
    # this section and rewrites this same file
    index = {
        "_class_name": "AudioLDM2Pipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": ["transformers", "ClapFeatureExtractor"],
        "language_model": ["transformers", "GPT2Model"],
        "projection_model": ["audioldm2", "AudioLDM2ProjectionModel"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "ClapModel"],
        "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "RobertaTokenizerFast"],
        "tokenizer_2": ["transformers", "T5TokenizerFast"],
        "unet": ["audioldm2", "AudioLDM2UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "vocoder": ["transformers", "SpeechT5HifiGan"],
    }
    p = out / "model_index.json"
    p.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    p.chmod(0o644)


# ---------------------------------------------------------------------------
STATS: dict = {}
# The reloaded float32 models of this run (vae, vocoder), reused by the prior section.
BUILT: dict = {}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


SECTIONS = {
    "unet": section_unet,
    "vae": section_vae,
    "vocoder": section_vocoder,
    "scheduler": section_scheduler,
    "prior": section_prior,
}
