"""PyTorch eager anchor for `fts bench engine`: the engine's Llama decoder (pre-norm RMSNorm, rotary "rotate half",
grouped-query attention written out, SwiGLU MLP), trained like SftTrainer (AdamW, summed token cross-entropy over the
step's targets, gradient clipping at 1.0) on random full-length rows. Prints one JSON object.

Usage: python3 torch_anchor.py '{"config": {"vocab_size": 4096, "hidden_size": 256, ...}, "batch": 8, "seq": 256,
                                  "threads": 2, "min_seconds": 10, "min_steps": 3}'
Debian's torch 1.13 has no scaled_dot_product_attention, hence the attention written out below. Run it with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the benchmark does) so OpenBLAS picks its kernels for this CPU.
"""
import json, math, os, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RmsNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
        self.head_dim = c["hidden_size"] // self.heads
        h = c["hidden_size"]
        self.q_proj = nn.Linear(h, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, h, bias=False)

    def forward(self, x, cos, sin, causal):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(causal, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn, self.mlp = Attention(c), Mlp(c)
        self.input_layernorm = RmsNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RmsNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, causal):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, causal)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RmsNorm(c["hidden_size"], c["rms_norm_eps"])
        self.lm_head = None if c["tie_word_embeddings"] else nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        head_dim = c["hidden_size"] // c["num_attention_heads"]
        self.inverse = 1.0 / (c["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))

    def forward(self, ids):
        t = ids.shape[1]
        angles = torch.arange(t, dtype=torch.float32)[:, None] * self.inverse[None, :]
        angles = torch.cat([angles, angles], -1)
        cos, sin = angles.cos()[None, None], angles.sin()[None, None]
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, causal)
        x = self.norm(x)
        return x @ self.embed_tokens.weight.T if self.lm_head is None else self.lm_head(x)


def blas_library():
    """The BLAS shared object actually mapped into this process (Debian's torch uses whatever libblas.so.3 points to)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line and "blas" in os.path.basename(line.split()[-1]).lower()}
        return ", ".join(sorted(os.path.realpath(p) for p in paths)) or "unknown"
    except OSError:
        return "unknown"


def main():
    s = json.loads(sys.argv[1])
    c = {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False, **s["config"]}
    torch.set_num_threads(int(s.get("threads", 2)))
    torch.manual_seed(1)
    model = Decoder(c)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("norm.weight") else p.normal_(0.0, 0.02)
    batch, seq = int(s["batch"]), int(s["seq"])
    # The engine benchmark's trainer settings: AdamW (0.9, 0.999, 1e-8) without weight decay, lr 3e-4.
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)
    generator = torch.Generator().manual_seed(5)

    def step():
        ids = torch.randint(3, c["vocab_size"], (batch, seq), generator=generator)
        logits = model(ids)
        # Labels are the next tokens; the last position has none (SftTrainer's shift).
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab_size"]), ids[:, 1:].reshape(-1), reduction="sum")
        (loss / (batch * (seq - 1))).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item() / (batch * (seq - 1))

    first_loss = step()  # warm-up, untimed
    times, last_loss = [], first_loss
    started = time.perf_counter()
    while len(times) < int(s.get("min_steps", 2)) or time.perf_counter() - started < float(s.get("min_seconds", 10)):
        t0 = time.perf_counter()
        last_loss = step()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({
        "torch_version": torch.__version__,
        "blas": blas_library(),
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": batch, "seq": seq, "steps": len(times),
        "seconds_per_step_median": round(median, 4), "seconds_per_step_best": round(times[0], 4),
        "tokens_per_second": round(batch * seq / median, 1),
        "first_loss": round(first_loss, 4), "last_loss": round(last_loss, 4),
    }))


if __name__ == "__main__":
    main()
