"""Text → image (docs/design.md §1, ``text ─text→image``): a small latent diffusion transformer that turns a
caption into one 176×320 image, which the image → 3D pipeline then takes as its input view.

Parts:

- :class:`WordTokenizer`: word-level, lower case, commas are tokens, ``<unk>`` for words outside the
  vocabulary. The vocabulary (:func:`lyra3d.data.worlds.caption_vocabulary`) is the procedural-world generator's
  (:mod:`lyra3d.data.worlds` captions: colours, textures, shapes, counts, skies and the few glue words) and is
  saved in the model's ``config.json``, so a checkpoint is self-contained.
- :class:`TextEncoder`: a small pre-LN transformer over the word tokens (learned positions), trained here
  from scratch jointly with the image model. Why not a pretrained sentence encoder: no registry package
  ships usable weights inside its wheel (those that offer one download it from a hub at run time, which
  this project cannot do), and pooled sentence embeddings are weak at binding colours to shapes anyway.
  Why jointly: the vocabulary is small and closed, and the only thing the text features have to be good
  for is denoising the image, so the diffusion loss is the right objective and needs no second dataset.
- :class:`TextToImageModel`: a DiT over ONE latent frame of the video tokenizer (``C × h × w``, 16 × 22 × 40
  at 176×320), tokens of ``p × p`` latent patches with a fixed sinusoidal position code. It reuses the video
  model's adaLN-Zero block (:class:`lyra3d.models.video_model._Block`, imported) and adds, after each block, a
  cross-attention from the image tokens to the text tokens (zero-initialised output, so training starts
  from the unconditional DiT) with a padding mask, so a prompt's image does not depend on what it is
  batched with. The pooled (masked mean) text embedding joins the flow-time embedding in the adaLN
  condition. This cross-attention wrapper is the one generalisation of the video model's blocks, and it
  lives here (the video model is unchanged).
- Training: rectified flow as in :mod:`lyra3d.models.video_model` (``x_s = (1 − s)·x₀ + s·ε``, the network
  predicts ``ε − x₀``), with flow times drawn logit-normal (more weight on the middle times, as in SD3),
  on latents normalised per channel (statistics of the training latents, kept in the config). The text is
  dropped (replaced by a learned null token) with probability ``drop_prob`` for classifier-free guidance.
- :meth:`TextToImageModel.generate`: Euler steps from noise with CFG, then the tokenizer's decoder;
  deterministic per seed.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.errors import InputError
from lyra3d.models.configs import PAD, UNK, TextToImageConfig  # noqa: F401 (the config lives in a torch-free module)
from lyra3d.models.flow import euler_sample
from lyra3d.models.layers import _Block, positions_3d, timestep_embedding
from lyra3d.models.modeling import Pretrained

_WORD_RE = re.compile(r"[a-z]+|[0-9]+|,")


class WordTokenizer:
    """Lower-cased words and commas → ids of a fixed vocabulary (``vocab[0]`` is ``<pad>``, ``vocab[1]``
    ``<unk>``). Prompts longer than ``max_tokens`` words are cut there."""

    def __init__(self, vocab: Sequence[str], max_tokens: int = 96):
        if len(vocab) < 2 or vocab[0] != PAD or vocab[1] != UNK:
            raise InputError(f"a vocabulary starts with {PAD!r}, {UNK!r}")
        if len(set(vocab)) != len(vocab):
            raise InputError("the vocabulary has repeated words")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_tokens = max_tokens

    def __len__(self) -> int:
        return len(self.vocab)

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORD_RE.findall(text.lower())

    def encode(self, text: str) -> list[int]:
        """Ids of the words of ``text`` (unknown words → ``<unk>``); an empty prompt is an InputError."""
        if not isinstance(text, str):
            raise InputError(f"a prompt must be a string, got {type(text).__name__}")
        words = self.split(text)
        if all(w == "," for w in words):
            raise InputError(f"the prompt {text!r} has no words; describe the scene, e.g. "
                             "'a red sphere and a blue box on a gray and white checkered floor, blue sky'")
        unk = self.index[UNK]
        return [self.index.get(w, unk) for w in words[:self.max_tokens]]

    def decode(self, ids: Sequence[int]) -> str:
        words = [self.vocab[int(i)] for i in ids if int(i) != 0]
        return " ".join(words).replace(" ,", ",")

    def batch(self, texts: str | Sequence[str], device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
        """``(ids (B, L) int64, mask (B, L) bool)``, padded to the longest prompt (True = a word)."""
        if isinstance(texts, str):
            texts = [texts]
        if len(texts) == 0:
            raise InputError("no prompts given")
        rows = [self.encode(t) for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
        return ids.to(device), (ids != 0).to(device)


class TextCondition(NamedTuple):
    tokens: Tensor  # (B, L, dim)
    mask: Tensor  # (B, L) bool, True = attend
    pooled: Tensor  # (B, dim)


class TextEncoder(nn.Module):
    """Word ids ``(B, L)`` with a padding mask → token features ``(B, L, out_dim)`` and their masked mean."""

    def __init__(self, vocab_size: int, max_tokens: int, dim: int, depth: int, heads: int, out_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if ids.shape[1] > self.pos.shape[0]:
            raise InputError(f"{ids.shape[1]} text tokens; this encoder takes at most {self.pos.shape[0]}")
        x = self.embed(ids) + self.pos[:ids.shape[1]]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~mask)
        x = self.proj(self.norm(x)) * mask[..., None]
        pooled = x.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return x, pooled


class _CrossAttention(nn.Module):
    """Residual cross-attention of image tokens to text tokens (masked), zero-initialised output."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, text: Tensor, mask: Tensor) -> Tensor:
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q(self.norm(x)).reshape(b, n, self.heads, hd).transpose(1, 2)
        k, v = self.kv(text).reshape(b, text.shape[1], 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return x + self.proj(a.transpose(1, 2).reshape(b, n, d))


class TextToImageModel(Pretrained):
    """Velocity network ``v(x_s, s, text)`` over one normalised latent frame ``(B, C, h, w)``."""

    config_class = TextToImageConfig
    model_type = "lyra3d-text-to-image"
    part = "text_to_image"

    def __init__(self, config: TextToImageConfig):
        super().__init__()
        c, p, d = config.latent_channels, config.patch_size, config.dim
        if config.latent_height % p or config.latent_width % p:
            raise InputError(f"latent size {config.latent_height}x{config.latent_width} must be a multiple of "
                             f"the patch size {p}")
        if len(config.latent_mean) != c or len(config.latent_std) != c:
            raise InputError(f"latent_mean and latent_std need {c} values (one per latent channel)")
        self.config = config
        self.words = WordTokenizer(config.vocab, config.max_tokens)
        self.text = TextEncoder(len(config.vocab), config.max_tokens, config.text_dim, config.text_depth,
                                config.text_heads, d)
        self.null_token = nn.Parameter(torch.zeros(d))  # the unconditional "prompt" (CFG)
        self.null_pooled = nn.Parameter(torch.zeros(d))
        self.latent_in = nn.Linear(c * p * p, d)
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.pooled_in = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(_Block(d, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.cross = nn.ModuleList(_CrossAttention(d, config.heads) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False)
        self.mod_out = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, c * p * p)
        for layer in (self.mod_out, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        shape = (1, c, 1, 1)
        self.register_buffer("latent_mean", torch.tensor(config.latent_mean).reshape(shape), persistent=False)
        self.register_buffer("latent_std", torch.tensor(config.latent_std).reshape(shape), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.latent_in.weight.device

    # -- latents ------------------------------------------------------------------------------------------
    def normalize(self, latents: Tensor) -> Tensor:
        return (latents - self.latent_mean) / self.latent_std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.latent_std + self.latent_mean

    # -- text -----------------------------------------------------------------------------------------------
    def tokenize(self, prompts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        return self.words.batch(prompts, self.device)

    def encode_text(self, ids: Tensor, mask: Tensor, drop: Tensor | None = None) -> TextCondition:
        """Text features of word ids; rows where ``drop`` is True get the null (unconditional) text."""
        tokens, pooled = self.text(ids, mask)
        if drop is not None:
            d = drop.to(tokens.device)
            null_mask = torch.zeros_like(mask)
            null_mask[:, 0] = True
            null_tokens = torch.zeros_like(tokens)
            null_tokens[:, 0] = self.null_token.to(tokens.dtype)
            tokens = torch.where(d[:, None, None], null_tokens, tokens)
            mask = torch.where(d[:, None], null_mask, mask)
            pooled = torch.where(d[:, None], self.null_pooled.to(pooled.dtype).expand_as(pooled), pooled)
        return TextCondition(tokens, mask, pooled)

    # -- the velocity network -----------------------------------------------------------------------------
    def forward(self, x: Tensor, s: Tensor, text: TextCondition) -> Tensor:
        """Velocity ``(B, C, h, w)`` at normalised noisy latents ``x`` and flow times ``s (B,)`` (1 = noise)."""
        b, c, h, w = x.shape
        p = self.config.patch_size
        if c != self.config.latent_channels or h % p or w % p:
            raise InputError(f"latents must be (B, {self.config.latent_channels}, h, w) with h, w multiples of "
                             f"{p}, got {tuple(x.shape)}")
        tokens = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        tokens = self.latent_in(tokens)
        tokens = tokens + positions_3d(1, h // p, w // p, tokens.shape[-1], x.device).to(tokens.dtype)
        cond = self.time(timestep_embedding(s, tokens.shape[-1]).to(tokens.dtype)) + self.pooled_in(text.pooled)
        for block, cross in zip(self.blocks, self.cross):
            tokens = cross(block(tokens, cond), text.tokens, text.mask)
        shift, scale = self.mod_out(F.silu(cond))[:, None].chunk(2, -1)
        out = self.out(self.norm_out(tokens) * (1 + scale) + shift)
        out = out.reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(b, c, h, w)

    # -- sampling -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_latents(self, prompts: str | Sequence[str], steps: int = 8, guidance: float = 3.0,
                       seed: int = 0) -> Tensor:
        """Tokenizer latents ``(B, C, h, w)`` by ``steps`` Euler steps from noise (s = 1) to data (s = 0)
        with classifier-free guidance ``v = v_u + guidance · (v_c − v_u)``. Deterministic per seed: the
        noise of prompt ``i`` is the ``i``-th draw of a generator seeded with ``seed``."""
        if steps < 1:
            raise InputError(f"steps must be >= 1, got {steps}")
        ids, mask = self.tokenize(prompts)
        b, dev = ids.shape[0], self.device
        cfg = self.config
        gen = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(b, cfg.latent_channels, cfg.latent_height, cfg.latent_width, generator=gen).to(dev)
        if guidance == 1.0:
            text = self.encode_text(ids, mask)
        else:  # the text is encoded once for both halves: [conditioned; dropped]
            drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(dev)
            text = self.encode_text(torch.cat([ids, ids]), torch.cat([mask, mask]), drop)
        return self.denormalize(euler_sample(noise, lambda x, s, _drop: self(x, s, text), steps, guidance))

    @torch.no_grad()
    def generate(self, prompts: str | Sequence[str], tokenizer, steps: int = 8, guidance: float = 3.0,
                 seed: int = 0) -> Tensor:
        """Images ``(B, 3, 8h, 8w)`` in [0, 1] (176×320 by default) for one prompt or a list, decoded by
        ``tokenizer`` (the video tokenizer the model was trained with; an image is a one-frame video)."""
        latents = self.sample_latents(prompts, steps, guidance, seed)
        module = tokenizer if isinstance(tokenizer, nn.Module) else getattr(tokenizer, "vae", None)
        tok_dev = next(module.parameters()).device if isinstance(module, nn.Module) else latents.device
        return tokenizer.decode(latents[:, None].to(tok_dev))[:, 0]


def flow_loss(model: TextToImageModel, x0: Tensor, ids: Tensor, mask: Tensor, drop_prob: float = 0.1,
              generator: torch.Generator | None = None, s: Tensor | None = None) -> Tensor:
    """Rectified-flow loss on normalised clean latents ``x0 (B, C, h, w)`` with their captions' word ids.
    Flow times are logit-normal unless given (``s (B,)``); the text is dropped with ``drop_prob``."""
    b, dev = x0.shape[0], x0.device
    gdev = generator.device if generator is not None else dev  # draw where the generator lives
    if s is None:
        s = torch.sigmoid(torch.randn(b, generator=generator, device=gdev)).to(dev)
    noise = torch.randn(x0.shape, generator=generator, device=gdev).to(dev, x0.dtype)
    xs = (1 - s)[:, None, None, None] * x0 + s[:, None, None, None] * noise
    drop = (torch.rand(b, generator=generator, device=gdev) < drop_prob).to(dev)
    v = model(xs, s, model.encode_text(ids, mask, drop))
    return F.mse_loss(v.float(), (noise - x0).float())


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
