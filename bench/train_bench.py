"""Training throughput: chatmimic's Trainer loop against a minimal nanoGPT-style PyTorch loop, same model, batch and data.

The study trained GPT-2 with nanoGPT because the transformers version ran three times slower (§4.2). This measures
useful tokens per second (tokens that are not padding) of both, in the same process, on the same packed blocks of the
demo dataset, with the same GPT-2 weights at the start, AdamW, clipping and a linear decay, and prints ours/reference.

Ours: `chatmimic.train.train` (transformers' Trainer, HF GPT2LMHeadModel with SDPA attention and the 4D block-diagonal
mask that keeps packed examples apart, fused AdamW, and GPT-2's activation as PyTorch's fused kernel, as
`chatmimic.train_full.build_model` sets it; `--gelu-new` keeps transformers' Python one), timed between optimizer
steps, so data collation is included.
Reference: nanoGPT's model (its CausalSelfAttention with `F.scaled_dot_product_attention(is_causal=True)`, no mask,
so packed examples see each other, as nanoGPT's contiguous stream does) and its training loop, with the batches
built before timing starts (favouring the reference). Both are also timed in CPU seconds of this process
(`time.process_time`): on a machine that other jobs share, wall time says more about them than about the code.

    .venv/bin/python bench/train_bench.py                    # the default: 4 layers, width 256, block 256, batch 8
    .venv/bin/python bench/train_bench.py --threads 1        # CPU seconds that other jobs on the machine do not distort
    .venv/bin/python bench/train_bench.py --threads 1 --vocab 50257 --steps 6 --rounds 1   # GPT-2's output layer
    .venv/bin/python bench/train_bench.py --gelu-new         # transformers' GPT-2 activation as it ships
    .venv/bin/python bench/train_bench.py --layers 12 --embd 768 --heads 12 --steps 6   # GPT-2 small's shape
"""
import argparse, tempfile, time
from pathlib import Path

from chatmimic.train import TrainConfig, demo_dataset, load_prepared, pack_dataset, PackedCollator, train
from chatmimic.train_full import use_fast_activation

import torch, torch.nn as nn, torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback

# ---- nanoGPT's model (github.com/karpathy/nanoGPT, model.py), condensed --------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, d, h):
        super().__init__(); self.c_attn, self.c_proj, self.h = nn.Linear(d, 3 * d), nn.Linear(d, d), h
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), CausalSelfAttention(d, h), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate='tanh'), nn.Linear(4 * d, d))
    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

class GPT(nn.Module):
    def __init__(self, vocab, block, n_layer, d, h):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.h, self.ln_f = nn.ModuleList(Block(d, h) for _ in range(n_layer)), nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False); self.lm_head.weight = self.wte.weight  # tied, as in GPT-2
    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h: x = b(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1), ignore_index=-100)

def from_hf(hf:GPT2LMHeadModel, cfg) -> GPT:
    "nanoGPT's from_pretrained: the same weights, Conv1D ones transposed."
    m = GPT(cfg.vocab_size, cfg.n_positions, cfg.n_layer, cfg.n_embd, cfg.n_head)
    sd, src = m.state_dict(), hf.state_dict()
    ren = {'wte.weight': 'transformer.wte.weight', 'wpe.weight': 'transformer.wpe.weight', 'ln_f.weight': 'transformer.ln_f.weight',
           'ln_f.bias': 'transformer.ln_f.bias', 'lm_head.weight': 'lm_head.weight'}
    for k in sd:
        if k in ren: s = src[ren[k]]
        else:
            s = src['transformer.' + k.replace('mlp.0', 'mlp.c_fc').replace('mlp.2', 'mlp.c_proj')]
            if k.endswith('weight') and any(n in k for n in ('c_attn', 'c_proj', 'mlp.0', 'mlp.2')): s = s.t()
        sd[k].copy_(s)
    return m

def reference(hf, cfg, batches, lr, warm):
    "nanoGPT's training loop: forward, backward, clip, AdamW step, linear decay; useful tokens/s after `warm` steps."
    m = from_hf(hf, cfg).train()
    decay = [p for p in m.parameters() if p.dim() >= 2]; no = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.01}, {'params': no, 'weight_decay': 0.0}], lr=lr, fused=True)
    n, tok, t0, c0, losses = len(batches), 0, None, None, []
    for i, (x, y, useful) in enumerate(batches):
        if i == warm: t0, c0, tok = time.perf_counter(), time.process_time(), 0
        for g in opt.param_groups: g['lr'] = lr * (1 - i / n)
        loss = m(x, y); loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        tok += useful; losses.append(loss.item())
    return tok / (time.perf_counter() - t0), tok / (time.process_time() - c0), sum(losses) / len(losses)

class Clock(TrainerCallback):
    "Time and useful tokens at the end of every optimizer step."
    def __init__(self): self.marks, self.trainer = [], None
    def on_step_end(self, args, state, control, **kw): self.marks.append((time.perf_counter(), time.process_time(), self.trainer.counts['tokens']))

def ours(hf, tok, dsd, stats, steps, batch, lr, warm):
    "chatmimic.train.train on a copy of the model; useful tokens/s between the end of step `warm` and the last."
    import chatmimic.train as T
    clock, orig = Clock(), T._RunCallback.on_train_begin
    def begin(self, args, state, control, **kw):  # hand the bench's clock to the trainer once it exists
        clock.trainer = self.trainer; self.trainer.add_callback(clock); return orig(self, args, state, control, **kw)
    T._RunCallback.on_train_begin = begin
    m = GPT2LMHeadModel(hf.config); m.load_state_dict(hf.state_dict())
    with tempfile.TemporaryDirectory() as d:
        cfg = TrainConfig(out=str(Path(d)/'run'), learning_rate=lr, micro_batch=batch, grad_accum=1, max_steps=steps, eval_every=0,
                          save_every=0, log_every=steps, progress=False, power_interval=5.0)
        try: met = train(m, tok, dsd, stats, cfg, dict(kind='full', model='bench', base=None))
        finally: T._RunCallback.on_train_begin = orig
    (t0, c0, k0), (t1, c1, k1) = clock.marks[warm - 1], clock.marks[-1]
    return (k1 - k0) / (t1 - t0), (k1 - k0) / (c1 - c0), met['train_loss']

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--layers', type=int, default=4); p.add_argument('--embd', type=int, default=256); p.add_argument('--heads', type=int, default=4)
    p.add_argument('--batch', type=int, default=8); p.add_argument('--steps', type=int, default=20); p.add_argument('--warm', type=int, default=3)
    p.add_argument('--rounds', type=int, default=2, help='alternating measurements of each; the best of each is reported')
    p.add_argument('--dropout', type=float, default=0.0)
    p.add_argument('--vocab', type=int, default=0, help="output layer size (0: the demo tokenizer's 2000; 50257: GPT-2's; the demo ids fit any)")
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch\'s default); 1 makes CPU seconds a stable measure on a busy machine')
    p.add_argument('--gelu-new', action='store_true', help="keep GPT-2's gelu_new as transformers writes it (the study's slow transformers run)")
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    dsd, stats, tok = load_prepared(demo_dataset(block_size=256))
    B = stats['config']['block_size']
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=a.vocab or len(tok), n_positions=B, n_embd=a.embd, n_layer=a.layers, n_head=a.heads, resid_pdrop=a.dropout,
                     embd_pdrop=a.dropout, attn_pdrop=a.dropout, use_cache=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if not a.gelu_new: use_fast_activation(cfg)  # what chatmimic.train_full.build_model does to every GPT-2
    hf = GPT2LMHeadModel(cfg)
    assert hf.config._attn_implementation == 'sdpa', hf.config._attn_implementation
    packed = pack_dataset(dsd['train'], B)
    col = PackedCollator(tok.pad_token_id, B)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(packed), generator=g).tolist()
    batches = []
    for i in range(a.steps):
        rows = [packed[order[(i * a.batch + j) % len(packed)]] for j in range(a.batch)]
        b = col(rows); batches.append((b['input_ids'], b['labels'], int(b['n_tokens'])))
    print(f'GPT-2 {a.layers} layers x {a.embd} ({cfg.activation_function}), {sum(p.numel() for p in hf.parameters()) / 1e6:.1f}M parameters, batch {a.batch} x {B} tokens, '
          f'{a.steps} steps ({a.warm} warm-up), {torch.get_num_threads()} threads, torch {torch.__version__}')
    best = {k: 0.0 for k in ('ours', 'reference', 'ours_cpu', 'reference_cpu')}
    for r in range(a.rounds):
        for who in (('reference', 'ours') if r % 2 == 0 else ('ours', 'reference')):  # alternate who goes first
            if who == 'reference': w, c, l = reference(hf, cfg, batches, 1e-3, a.warm)
            else: w, c, l = ours(hf, tok, dsd, stats, a.steps, a.batch, 1e-3, a.warm)
            best[who], best[who + '_cpu'] = max(best[who], w), max(best[who + '_cpu'], c)
            print(f'round {r + 1}: {who:9s} {w:9,.0f} useful tokens/s wall, {c:9,.0f} per CPU-second (mean loss {l:.3f})', flush=True)
    print(f"ours / reference = {best['ours'] / best['reference']:.2f} on wall time ({best['ours']:,.0f} vs {best['reference']:,.0f} tokens/s), "
          f"{best['ours_cpu'] / best['reference_cpu']:.2f} per CPU-second (best of {a.rounds} each; CPU time is what a shared machine does not distort)")

if __name__ == '__main__': main()
