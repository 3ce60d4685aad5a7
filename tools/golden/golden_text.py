"""Text-conditioning section of the golden fixtures: TINY random AudioLDM2 text
components, saved with ``save_pretrained`` in the real published layout next to the
diffusion core, and the values ``AudioLDM2Pipeline.encode_prompt`` (diffusers 0.42.1)
computes from them.

Writes (next to unet/ vae/ vocoder/ scheduler/, which must already be in OUT: the
widths are taken from OUT/unet/config.json):

    text_encoder/       ClapModel (tiny text AND audio config; only the text branch is used)
    text_encoder_2/     T5EncoderModel, Flan-T5 style (gated-gelu)
    projection_model/   AudioLDM2ProjectionModel
    language_model/     GPT2Model (gelu_new, max_new_tokens 8)
    tokenizer/          RobertaTokenizerFast (byte-level BPE trained here with `tokenizers`)
    tokenizer_2/        T5TokenizerFast (Unigram trained here with `tokenizers`)
    feature_extractor/  ClapFeatureExtractor (default config; the pipeline needs one to load)
    text_prompts.json   the prompts p0, p1, p2 in order

and rewrites OUT/model_index.json (golden_models.write_model_index) with every component.

The section has its own numpy Generator ("text"), so it changes no other tensor. All
parameters of the used modules are redrawn from it (``randomize_text``), rounded to
float32, saved, reloaded; the references are computed in float64 by a pipeline loaded
with ``AudioLDM2Pipeline.from_pretrained(OUT, language_model=GPT2LMHeadModel(...))`` and
converted with ``.to(float64)``: the published layout (GPT2Model, as in
cvssp/audioldm2-music) cannot run ``encode_prompt`` with diffusers 0.42.1 + transformers
5.24 (AttributeError, recorded in the printed stats), GPT2LMHeadModel loads the same
weights. Intermediate values are recorded with hooks during ``pipe.encode_prompt``; the
generated states are stored from an explicit no-cache loop (``plain_generate``) after
checking that the pipeline's own result equals it.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import torch
from torch import nn

import golden_models as gm

F64 = torch.float64

PROMPTS = [
    "",
    "solo piano, studio recording",
    "a much longer prompt about a warm analog synthesizer pad with slow attack, "
    "vinyl crackle and tape hiss",
]

# Training text for the two tiny tokenizers (byte-level BPE and Unigram). Deterministic.
CORPUS = [
    "solo piano, studio recording",
    "a much longer prompt about a warm analog synthesizer pad with slow attack, vinyl "
    "crackle and tape hiss",
    "a calm acoustic guitar melody with soft strings in the background",
    "upbeat electronic dance music with a strong kick drum and bright synth leads",
    "jazz trio with upright bass, brushed drums and a mellow piano",
    "orchestral film score with swelling strings, brass and timpani",
    "lo-fi hip hop beat with dusty vinyl crackle and a relaxed piano loop",
    "ambient drone with slowly evolving pads and distant bells",
    "rock song with distorted electric guitars, bass and loud drums",
    "an old recording of a string quartet, noisy and muffled",
    "warm tape saturation, analog hiss and a slow vintage organ",
    "female vocals over a gentle acoustic piano ballad",
    "techno music with a strong, upbeat tempo and high melodic riffs",
    "clean studio recording of a solo cello playing a slow melody",
    "a vintage radio broadcast with crackle, hum and band-limited sound",
]

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4 as RoBERTa
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0..2 as T5

CLAP_AUDIO_TINY = dict(  # never run by the pipeline; only has to exist and be small
    window_size=2, num_mel_bins=8, spec_size=16, patch_size=4, patch_stride=[4, 4],
    num_classes=3, hidden_size=8, depths=[1, 1], num_attention_heads=[1, 2],
    patch_embeds_hidden_size=4, num_hidden_layers=2,
)

# GPT-2 n_embd and T5 d_model are NOT here: they come from the UNet's cross_attention_dim.
TEXT_VARIANTS = {
    "default": {
        "bpe_vocab": 320,
        "unigram_vocab": 150,
        "clap_max_length": 64,  # RoBERTa positions go up to 1 + 64 -> 66 position rows
        "t5_max_length": 64,
        "clap": dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32),
        "clap_projection_dim": 8,
        "t5": dict(d_kv=6, num_heads=2, d_ff=24, num_layers=2,
                   relative_attention_num_buckets=8, relative_attention_max_distance=20),
        "gpt2": dict(n_layer=2, n_head=3, n_inner=None, n_positions=96, vocab_size=32),
    },
    "alt": {
        "bpe_vocab": 300,
        "unigram_vocab": 110,
        "clap_max_length": 72,
        "t5_max_length": 96,
        "clap": dict(hidden_size=12, num_hidden_layers=1, num_attention_heads=3,
                     intermediate_size=20),
        "clap_projection_dim": 6,
        "t5": dict(d_kv=4, num_heads=3, d_ff=10, num_layers=3,
                   relative_attention_num_buckets=6, relative_attention_max_distance=12),
        "gpt2": dict(n_layer=3, n_head=2, n_inner=16, n_positions=128, vocab_size=24),
    },
}

# Init (see README): Linear / Conv1D weight ~ N(0, 1/fan_in) (the projection model's CLAP
# `projection`: N(0, 1), its input has unit norm), bias ~ N(0, B_STD^2) (the
# golden_models values); norms 1 + N(0, NORM_STD^2) (+ bias N(0, NORM_STD^2)); embeddings
# N(0, EMB_STD^2), GPT-2 position embeddings N(0, WPE_STD^2); projection-model sos/eos
# N(0, 1).
EMB_STD = 1.0
QK_GAIN = 2.0  # RoBERTa query/key: sharper attention, so the CLAP feature depends on the prompt
WPE_STD = 0.5
N_NEW = 8  # language_model.config.max_new_tokens, as audioldm2-music


def tcfg() -> dict:
    return TEXT_VARIANTS[gm.CONTEXT["variant"]]


def cross_widths() -> tuple[int, int]:
    """(GPT-2 width, T5 width) = entries j=1, j=2 of every block's cross_attention_dim in
    OUT/unet/config.json (else the variant's UNet config)."""
    d = gm.out_dir("unet")
    if d is not None and (d / "config.json").is_file():
        ca = json.loads((d / "config.json").read_text())["cross_attention_dim"]
        assert ca == gm.cfg()["unet"]["cross_attention_dim"], \
            f"text: OUT/unet is not variant {gm.CONTEXT['variant']}"
    else:
        ca = gm.cfg()["unet"]["cross_attention_dim"]
    if isinstance(ca[0], int):
        raise ValueError("text: UNet cross_attention_dim is not per block [null, gpt2, t5]")
    gpt, t5 = {b[1] for b in ca}, {b[2] for b in ca}
    assert len(gpt) == 1 and len(t5) == 1, f"text: blocks disagree: {ca}"
    return gpt.pop(), t5.pop()


# ---------------------------------------------------------------------------
# tokenizers
# ---------------------------------------------------------------------------
def train_bpe(vocab_size: int):
    """Byte-level BPE (RoBERTa style) trained on CORPUS; returns (vocab dict, merges)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tr = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                             special_tokens=ROBERTA_SPECIALS,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, tr)
    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    assert [vocab[t] for t in ROBERTA_SPECIALS] == list(range(5)), "RoBERTa special ids"
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return vocab, merges


def train_unigram(vocab_size: int):
    """Unigram (T5 style) trained on CORPUS. The trainer's float sums are not
    bit-reproducible (parallel hash maps; the last digit of a score and the order of
    pieces with equal scores vary from run to run, the set of pieces does not), so the
    scores are rounded to 6 decimals and the pieces sorted by (-score, piece)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    tr = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=T5_SPECIALS,
                                 unk_token="<unk>", show_progress=False, max_piece_length=8)
    tok.train_from_iterator(CORPUS, tr)
    pieces = json.loads(tok.to_str())["model"]["vocab"]
    assert [p for p, _ in pieces[:3]] == T5_SPECIALS, "T5 special ids"
    rest = []
    for p, s in pieces[3:]:
        frac = abs(s * 1e6 - math.floor(s * 1e6)) - 0.5
        assert abs(frac) > 1e-6, f"unigram score {s} too close to a rounding edge"
        rest.append((p, round(s, 6)))
    rest.sort(key=lambda ps: (-ps[1], ps[0]))
    return [(p, 0.0) for p in T5_SPECIALS] + rest


def build_tokenizers(c):
    from transformers import RobertaTokenizerFast, T5TokenizerFast

    vocab, merges = train_bpe(c["bpe_vocab"])
    tok = RobertaTokenizerFast(vocab=vocab, merges=merges, model_max_length=c["clap_max_length"])
    tok2 = T5TokenizerFast(vocab=train_unigram(c["unigram_vocab"]), extra_ids=0,
                           model_max_length=c["t5_max_length"])
    return tok, tok2


def save_tokenizer(tok, cls, sub):
    """save_pretrained + reload; checks that the raw tokenizer.json (what a `tokenizers`
    port loads) gives the same ids as the reloaded transformers tokenizer."""
    from tokenizers import Tokenizer

    d = gm.out_dir(sub)
    d.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(d))
    for f in d.iterdir():
        f.chmod(0o644)
    re = cls.from_pretrained(str(d))
    raw = Tokenizer.from_file(str(d / "tokenizer.json"))
    for p in PROMPTS + CORPUS:
        a = re(p).input_ids
        assert a == tok(p).input_ids, f"{sub}: reload changed the ids of {p!r}"
        assert a == raw.encode(p).ids, f"{sub}: tokenizer.json differs from {cls.__name__}"
    return re


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def randomize_text(model: nn.Module, rng: np.random.Generator, prefixes=None) -> None:
    """Redraws every parameter of ``model`` (in named_modules order; with ``prefixes``
    only the modules under them) from ``rng``, rounded to float32; tied parameters are
    drawn once. Raises on a parameter of an unhandled module type."""
    from transformers.pytorch_utils import Conv1D

    done: set[int] = set()
    normal = gm.normal
    with torch.no_grad():
        for name, m in model.named_modules():
            if prefixes is not None and not any(name == p or name.startswith(p + ".")
                                                for p in prefixes):
                continue
            own = [(n, p) for n, p in m.named_parameters(recurse=False) if id(p) not in done]
            if not own:
                continue
            kind = type(m).__name__
            for pn, p in own:
                if isinstance(m, nn.Linear) and pn == "weight" and name == "projection" \
                        and type(model).__name__ == "AudioLDM2ProjectionModel":
                    # its input, the CLAP feature, has unit L2 norm: N(0, 1) weights give
                    # the projected CLAP token unit variance like the T5 tokens
                    p.copy_(normal(rng, p.shape, 1.0))
                elif isinstance(m, nn.Linear) and pn == "weight":
                    gain = QK_GAIN if name.endswith(("self.query", "self.key")) else 1.0
                    p.copy_(normal(rng, p.shape, gain / np.sqrt(p.shape[1])))
                elif isinstance(m, Conv1D) and pn == "weight":  # GPT-2: weight (in, out)
                    p.copy_(normal(rng, p.shape, 1.0 / np.sqrt(p.shape[0])))
                elif isinstance(m, (nn.Linear, Conv1D)) and pn == "bias":
                    p.copy_(normal(rng, p.shape, gm.B_STD))
                elif isinstance(m, nn.Embedding) and pn == "weight":
                    std = WPE_STD if name.endswith("wpe") else EMB_STD
                    p.copy_(normal(rng, p.shape, std))
                elif (isinstance(m, nn.LayerNorm) or kind == "T5LayerNorm") and pn == "weight":
                    p.copy_(normal(rng, p.shape, gm.NORM_STD, 1.0))
                elif isinstance(m, nn.LayerNorm) and pn == "bias":
                    p.copy_(normal(rng, p.shape, gm.NORM_STD))
                elif kind == "AudioLDM2ProjectionModel" and pn.startswith(("sos_", "eos_")):
                    p.copy_(normal(rng, p.shape, 1.0))
                else:
                    raise RuntimeError(f"unhandled parameter {name}.{pn} ({kind})")
                done.add(id(p))
    for name, p in model.named_parameters():
        if prefixes is None or any(name.startswith(pf + ".") for pf in prefixes):
            assert id(p) in done, f"parameter not re-randomised: {name}"


def build_models(rng, c, d_gpt, d_t5, vocab_clap, vocab_t5):
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel
    from transformers import ClapConfig, ClapModel, GPT2Config, GPT2Model, T5Config, \
        T5EncoderModel

    clap_cfg = ClapConfig(
        text_config=dict(c["clap"], vocab_size=vocab_clap, hidden_act="gelu",
                         max_position_embeddings=c["clap_max_length"] + 2, type_vocab_size=1,
                         layer_norm_eps=1e-12, pad_token_id=1, bos_token_id=0, eos_token_id=2),
        audio_config=CLAP_AUDIO_TINY,
        projection_dim=c["clap_projection_dim"], projection_hidden_act="relu")
    # Flan-T5: gated-gelu (= gelu_new), untied lm head (transformers 5 stores that as
    # scale_decoder_outputs false), eps 1e-6. vocab rounded up to a multiple of 8 (as
    # flan-t5's 32128 for a 32100-token tokenizer): the extra rows are never used.
    t5_cfg = T5Config(**c["t5"], d_model=d_t5, vocab_size=8 * math.ceil(vocab_t5 / 8),
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0)
    g = c["gpt2"]
    gpt_cfg = GPT2Config(n_embd=d_gpt, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                         bos_token_id=g["vocab_size"] - 1, eos_token_id=g["vocab_size"] - 1,
                         max_new_tokens=N_NEW, **g)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # default init; the text branch is fully overwritten below,
        clap = ClapModel(clap_cfg)  # the unused audio branch keeps this seeded init
        t5 = T5EncoderModel(t5_cfg)
        gpt = GPT2Model(gpt_cfg)
        proj = AudioLDM2ProjectionModel(text_encoder_dim=c["clap_projection_dim"],
                                        text_encoder_1_dim=d_t5, langauge_model_dim=d_gpt)
    randomize_text(clap, rng, prefixes=["text_model", "text_projection"])
    randomize_text(t5, rng)
    randomize_text(proj, rng)
    randomize_text(gpt, rng)
    models = {}
    for sub, m in [("text_encoder", clap), ("text_encoder_2", t5),
                   ("projection_model", proj), ("language_model", gpt)]:
        models[sub] = gm.save_and_reload(m, type(m), sub).eval()
    return models


def save_feature_extractor():
    from transformers import ClapFeatureExtractor

    d = gm.out_dir("feature_extractor")
    d.mkdir(parents=True, exist_ok=True)
    ClapFeatureExtractor().save_pretrained(str(d))
    for f in d.iterdir():
        f.chmod(0o644)


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------
class Recorder:
    """Records, during ``pipe.encode_prompt``, what the pipeline feeds to / gets from
    each text component (wrappers and hooks only; nothing is changed)."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.clap, self.t5, self.proj, self.gpt = [], [], [], []

    def __enter__(self):
        pipe, rec = self.pipe, self
        te = pipe.text_encoder
        orig = te.get_text_features

        def get_text_features(input_ids, attention_mask=None, **kw):
            out = orig(input_ids, attention_mask=attention_mask, **kw)
            rec.clap.append((input_ids.clone(), attention_mask.clone(),
                             out.pooler_output.detach().clone()))
            return out

        te.get_text_features = get_text_features
        self.hooks = [
            pipe.text_encoder_2.register_forward_hook(
                lambda m, a, kw, o: rec.t5.append((a[0].clone(), kw["attention_mask"].clone(),
                                                   o[0].detach().clone())), with_kwargs=True),
            pipe.projection_model.register_forward_hook(
                lambda m, a, kw, o: rec.proj.append((o.hidden_states.detach().clone(),
                                                     o.attention_mask.clone())),
                with_kwargs=True),
            pipe.language_model.register_forward_pre_hook(
                lambda m, a, kw: rec.gpt.append(
                    {k: (v.detach().clone() if torch.is_tensor(v) else v)
                     for k, v in kw.items()}), with_kwargs=True),
        ]
        return self

    def __exit__(self, *exc):
        del self.pipe.text_encoder.get_text_features  # back to the class method
        for h in self.hooks:
            h.remove()
        return False


def plain_generate(gpt, embeds, mask, n=N_NEW):
    """The plain loop: n times run GPT2Model on the WHOLE current sequence (no KV cache,
    position ids 0..L-1, the mask extended with ones for the generated tokens) and
    append the last position of the last hidden state (after ln_f)."""
    x, m = embeds, mask
    for _ in range(n):
        L = x.shape[1]
        out = gpt(inputs_embeds=x, attention_mask=m, use_cache=False,
                  position_ids=torch.arange(L)[None].expand(x.shape[0], L))
        x = torch.cat([x, out.last_hidden_state[:, -1:, :]], dim=1)
        m = torch.cat([m, m.new_ones((m.shape[0], 1))], dim=1)
    return x[:, -n:, :]


def cached_generate(gpt, embeds, mask, n=N_NEW):
    """The same with a KV cache (one new token per step after the first), for scale."""
    from transformers import DynamicCache

    cache = DynamicCache(config=gpt.config)
    x, m, L0 = embeds, mask, embeds.shape[1]
    new = []
    step_in = x
    for i in range(n):
        L = step_in.shape[1]
        past = 0 if i == 0 else L0 + i - 1
        out = gpt(inputs_embeds=step_in, attention_mask=m, cache=cache, use_cache=True,
                  position_ids=torch.arange(past, past + L)[None])
        h = out.last_hidden_state[:, -1:, :]
        new.append(h)
        step_in = h
        m = torch.cat([m, m.new_ones((m.shape[0], 1))], dim=1)
    return torch.cat(new, dim=1)


def check_gpt_calls(calls, embeds, mask) -> str:
    """What generate_language_model passed to the language model, call by call: asserts
    the pattern the plain loop reproduces (whole sequence, mask extended with ones, no
    past, no position ids / cache_position) and returns a one-line summary."""
    L0 = embeds.shape[1]
    assert len(calls) == N_NEW
    for i, kw in enumerate(calls):
        assert sorted(kw) == ["attention_mask", "inputs_embeds", "output_hidden_states",
                              "past_key_values", "return_dict", "use_cache"], sorted(kw)
        e, am = kw["inputs_embeds"], kw["attention_mask"]
        assert e.shape[1] == L0 + i and torch.equal(e[:, :L0], embeds)
        assert am.shape[1] == L0 + i and torch.equal(am[:, :L0], mask) and bool(am[:, L0:].all())
        assert kw["past_key_values"] is None and kw["use_cache"] is None
    return (f"{len(calls)} calls, inputs_embeds length {L0}..{L0 + N_NEW - 1} (whole sequence), "
            f"attention_mask = projected mask + ones, past_key_values None, use_cache None, "
            f"no position_ids / cache_position")


def section_text(rng: np.random.Generator) -> dict:
    from diffusers import AudioLDM2Pipeline
    from transformers import RobertaTokenizerFast, T5TokenizerFast

    if gm.CONTEXT["out"] is None:
        raise RuntimeError("text: needs an output dir (the pipeline is loaded from it)")
    out_root = gm.CONTEXT["out"]
    c = tcfg()
    d_gpt, d_t5 = cross_widths()
    S = gm.STATS

    tok, tok2 = build_tokenizers(c)
    tok = save_tokenizer(tok, RobertaTokenizerFast, "tokenizer")
    tok2 = save_tokenizer(tok2, T5TokenizerFast, "tokenizer_2")
    build_models(rng, c, d_gpt, d_t5, len(tok), len(tok2))
    save_feature_extractor()
    gm.write_model_index(out_root)
    p = out_root / "text_prompts.json"
    p.write_text(json.dumps(PROMPTS, indent=2) + "\n")
    p.chmod(0o644)

    # The pipeline exactly as published (model_index.json: language_model GPT2Model, as
    # cvssp/audioldm2-music) cannot generate with the pinned versions: diffusers 0.42.1
    # calls language_model._update_model_kwargs_for_generation, a GenerationMixin method
    # GPT2Model does not have in transformers 5 (diffusers' type hint is GPT2LMHeadModel).
    published = AudioLDM2Pipeline.from_pretrained(str(out_root))
    published.set_progress_bar_config(disable=True)
    assert type(published.language_model).__name__ == "GPT2Model"
    try:
        with torch.no_grad():
            published_out = published.encode_prompt(
                PROMPTS[1], device="cpu", num_waveforms_per_prompt=1,
                do_classifier_free_guidance=False)
        S["text: encode_prompt with the published GPT2Model"] = "runs"
    except AttributeError as e:
        published_out = None
        S["text: encode_prompt with the published GPT2Model"] = f"AttributeError: {e}"
    # ... so the references load the same language_model/ weights as GPT2LMHeadModel
    # (base_model_prefix "transformer", lm_head tied to wte: no new weights), the class
    # the pipeline declares; its hidden states are GPT2Model's.
    from transformers import GPT2LMHeadModel

    lm = GPT2LMHeadModel.from_pretrained(str(gm.out_dir("language_model"))).eval()
    base = published.language_model.state_dict()
    assert sorted(lm.transformer.state_dict()) == sorted(base) and all(
        torch.equal(lm.transformer.state_dict()[k], v) for k, v in base.items())
    assert lm.lm_head.weight.data_ptr() == lm.transformer.wte.weight.data_ptr()
    pipe32 = AudioLDM2Pipeline.from_pretrained(str(out_root), language_model=lm)
    pipe32.set_progress_bar_config(disable=True)
    assert type(pipe32.tokenizer).__name__ == "RobertaTokenizer" and \
        type(pipe32.tokenizer_2).__name__ == "T5Tokenizer", "tokenizer classes"
    pipe = copy.deepcopy(pipe32).to(F64)
    assert pipe.language_model.config.max_new_tokens == N_NEW
    S["text: language_model has _get_initial_cache_position"] = \
        hasattr(pipe.language_model, "_get_initial_cache_position")
    gpt = pipe.language_model.transformer  # the GPT2Model inside, for the plain loops

    out: dict[str, torch.Tensor] = {}
    t5_lens, worst_plain, worst_cached = [], 0.0, 0.0
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            with Recorder(pipe) as rec:
                embeds, mask, generated = pipe.encode_prompt(
                    prompt, device="cpu", num_waveforms_per_prompt=1,
                    do_classifier_free_guidance=False)
            (cids, cmask, feats), = rec.clap
            (tids, tmask, tstates), = rec.t5
            (proj, pmask), = rec.proj
            assert len(rec.gpt) == N_NEW
            assert torch.equal(embeds, tstates) and torch.equal(mask, tmask)
            assert int(cmask.sum()) == int(cmask[0, :int(cmask.sum())].sum()), "mask not a prefix"
            n = int(cmask.sum())
            assert cids.shape[1] == c["clap_max_length"] and n < cids.shape[1], "no padding?"
            assert torch.all(cids[0, n:] == tok.pad_token_id)
            assert bool(tmask.all()), "batch 1: no T5 padding"
            t5_lens.append(tids.shape[1])
            pre = f"text.p{i}"
            out[f"{pre}.clap_ids"] = cids[0, :n].double()
            out[f"{pre}.t5_ids"] = tids[0].double()
            out[f"{pre}.clap_features"] = feats[:, None, :]
            out[f"{pre}.t5_states"] = tstates
            out[f"{pre}.t5_mask"] = tmask.double()
            out[f"{pre}.projected"] = proj
            out[f"{pre}.projected_mask"] = pmask.double()

            # step 2: the plain loop vs what the pipeline generated
            ref = plain_generate(gpt, proj, pmask)
            worst_plain = max(worst_plain, float((ref - generated).abs().max()))
            worst_cached = max(worst_cached,
                               float((cached_generate(gpt, proj, pmask) - generated).abs().max()))
            out[f"{pre}.generated"] = ref
            if not torch.allclose(ref, generated, rtol=0, atol=1e-12):
                out[f"{pre}.generated_diffusers"] = generated
            summary = check_gpt_calls(rec.gpt, proj, pmask)  # asserted for every prompt
            if i == 2:
                S["text: GPT-2 calls of generate_language_model, p2"] = summary

            # padding to model_max_length vs the unpadded ids (float64 and float32)
            for dt, te in (("f64", pipe.text_encoder), ("f32", pipe32.text_encoder)):
                ft = torch.float64 if dt == "f64" else torch.float32
                a = te.get_text_features(cids, attention_mask=cmask).pooler_output
                b = te.get_text_features(cids[:, :n], attention_mask=cmask[:, :n]).pooler_output
                key = f"text: CLAP padded vs unpadded max|diff| ({dt})"
                S[key] = max(S.get(key, 0.0), float((a.to(ft) - b.to(ft)).abs().max()))
            pooled = pipe.text_encoder.text_model(cids, attention_mask=cmask).pooler_output
            key = "text: CLAP pooler fraction |tanh| > 0.99"
            S[key] = max(S.get(key, 0.0), float((pooled.abs() > 0.99).double().mean()))

            # float32 pipeline vs the float64 references
            e32, _, g32 = pipe32.encode_prompt(prompt, device="cpu", num_waveforms_per_prompt=1,
                                                 do_classifier_free_guidance=False)
            for k, a, b in (("t5_states", e32, embeds), ("generated", g32, ref)):
                key = f"text: max|f32 - f64| {k}"
                S[key] = max(S.get(key, 0.0), float((a.double() - b).abs().max()))

        assert len(set(t5_lens)) == len(t5_lens), f"T5 token counts must differ: {t5_lens}"
        S["text: step 2, max|pipeline - plain loop| (p0..p2)"] = worst_plain
        S["text: step 2, max|pipeline - KV-cache loop| (p0..p2)"] = worst_cached

        # classifier-free guidance: P[1] and the default negative prompt ("")
        with Recorder(pipe) as rec:
            embeds, mask, generated = pipe.encode_prompt(
                PROMPTS[1], device="cpu", num_waveforms_per_prompt=1,
                do_classifier_free_guidance=True)
        assert len(rec.proj) == 2 and len(rec.gpt) == 2 * N_NEW
        (ppos, mpos), (pneg, mneg) = rec.proj  # encode_prompt: positive first
        check_gpt_calls(rec.gpt[:N_NEW], ppos, mpos)
        check_gpt_calls(rec.gpt[N_NEW:], pneg, mneg)
        ref = torch.cat([plain_generate(gpt, pneg, mneg), plain_generate(gpt, ppos, mpos)])
        out["text.cfg.prompt_embeds"] = embeds
        out["text.cfg.attention_mask"] = mask.double()
        out["text.cfg.generated"] = ref
        d = float((ref - generated).abs().max())
        S["text: step 2, max|pipeline - plain loop| (cfg)"] = d
        if not torch.allclose(ref, generated, rtol=0, atol=1e-12):
            out["text.cfg.generated_diffusers"] = generated
        S["text: cfg row 1 vs p1 max|diff| (t5, generated)"] = (
            float((embeds[1:] - out["text.p1.t5_states"]).abs().max()),
            float((generated[1:] - out["text.p1.generated"]).abs().max()))

        # every path matters (relative L2 change of the generated states)
        g1 = out["text.p1.generated"]
        with Recorder(pipe) as rec:
            pipe.encode_prompt(PROMPTS[1], device="cpu", num_waveforms_per_prompt=1,
                               do_classifier_free_guidance=False)
        (proj_p1, pm1), = rec.proj
        alt = proj_p1.clone()
        alt[:, 1] = pipe.projection_model.projection(out["text.p2.clap_features"])[:, 0]
        S["text.p1 rel. change of generated, CLAP features of p2"] = \
            gm.rel(plain_generate(gpt, alt, pm1), g1)
        pos = plain_generate_shift(gpt, proj_p1, pm1, 1)
        S["text.p1 rel. change of generated, positions +1"] = gm.rel(pos, g1)
        neg_ones = plain_generate(gpt, pneg, torch.ones_like(mneg))
        S["text.cfg rel. change of negative generated, mask all ones"] = \
            gm.rel(neg_ones, ref[:1])
        if published_out is not None:
            S["text: published GPT2Model pipeline, p1 generated max|f32 - ref|"] = float(
                (published_out[2].double() - out["text.p1.generated"]).abs().max())
        for a, b in ((0, 1), (1, 2)):
            S[f"text: generated rel. difference p{a} vs p{b}"] = gm.rel(
                out[f"text.p{a}.generated"], out[f"text.p{b}.generated"])
        S["text: T5 token counts p0..p2"] = t5_lens
        S["text: CLAP token counts p0..p2"] = [int(out[f"text.p{i}.clap_ids"].numel())
                                                for i in range(3)]
    return out


def plain_generate_shift(gpt, embeds, mask, shift, n=N_NEW):
    """plain_generate with position ids shift..L-1+shift (sensitivity statistic only)."""
    x, m = embeds, mask
    for _ in range(n):
        L = x.shape[1]
        o = gpt(inputs_embeds=x, attention_mask=m, use_cache=False,
                position_ids=(torch.arange(L) + shift)[None])
        x = torch.cat([x, o.last_hidden_state[:, -1:, :]], dim=1)
        m = torch.cat([m, m.new_ones((m.shape[0], 1))], dim=1)
    return x[:, -n:, :]


SECTIONS = {
    "text": section_text,
}
