"""GPU check (issue 13.9): what can only be measured on a CUDA machine, prepared to run there in under 8 minutes.

For each QLoRA backend (unsloth where it imports, peft), on the demo's examples (Gemma 3 tokens) and a model of
Gemma 3 270M's architecture (random weights from its config, no download; `--model` takes a local folder instead):
  1. packed against unpacked logits: `chatmimic.train.packing_error` (the masks that keep packed examples apart;
     under unsloth, which takes no custom mask, the number says why `attention_guard` refuses packing there);
  2. a few training steps with LoRA (4-bit NF4 where bitsandbytes imports, else a 16-bit base), one example per row
     under unsloth, packed rows under peft: seconds per step, tokens per second;
  3. the measured peak GPU memory (`torch.cuda.max_memory_allocated` and `_reserved`) against `03a_qlora_plan`'s
     estimate for the same model, block, micro batch and gradient checkpointing;
and power all along through NVML (`chatmimic.power.PowerSampler`): `power.csv`, with one phase per backend and step.
It prints a table and writes `gpu_check.json` (and `power.csv`, `power.json`) to `--out`. A backend that does not
import is reported as skipped, with the reason. Without a CUDA GPU it prints one line saying so and exits 0.

    .venv/bin/python bench/gpu_check.py --write-data runs/gpu_check/data.json   # here (datasets installed): the demo's examples as JSON
    python bench/gpu_check.py --data runs/gpu_check/data.json --out runs/gpu_check # there (torch, transformers, peft; no datasets needed)
"""
from __future__ import annotations
import argparse, importlib.util, json, math, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # chatmimic from this checkout, installed or not

import torch

# Gemma 3 270M's architecture (its config.json, as the gemma3-270m package converts it): built here, random, no download
GEMMA3_270M = dict(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1,
                   head_dim=256, max_position_embeddings=32768, sliding_window=512, query_pre_attn_scalar=256, rms_norm_eps=1e-6,
                   hidden_activation='gelu_pytorch_tanh', layer_types=(['sliding_attention'] * 5 + ['full_attention']) * 3,
                   bos_token_id=2, eos_token_id=1, pad_token_id=0, tie_word_embeddings=True)
STOP_ID = 106  # <end_of_turn>, the demo's terminator in Gemma 3's vocabulary
BACKENDS = ('unsloth', 'peft')


def no_gpu_line() -> str|None:
    "The one line said where there is no CUDA GPU, else None."
    if torch.cuda.is_available(): return None
    return f'gpu_check: no CUDA GPU here (torch {torch.__version__}, torch.cuda.is_available() is False): nothing measured, exit 0.'


def write_data(path, block:int=256, n:int=64) -> Path:
    "The demo's QLoRA training examples (Gemma 3 270M's tokenizer, its chat template, block `block`) as JSON: what the GPU machine trains on without `datasets`."
    from chatmimic.train import demo_dataset, load_prepared
    from chatmimic.core import atomic_write
    dsd, stats, _ = load_prepared(demo_dataset('qlora', 'gemma3-270m', 'model', block))
    rows = [dict(input_ids=r['input_ids'], labels=r['labels'], prompt_len=r['prompt_len']) for r in dsd['train'].select(range(min(n, len(dsd['train']))))]
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f: json.dump(dict(block_size=block, stop_token_id=stats['stop_token_id'], examples=rows), f)
    return path


def load_examples(path=None, block:int=256, n:int=64, vocab:int=262144, seed:int=0) -> tuple[list[dict], int, str]:
    "(examples, block, where from): the JSON of `write_data`, else the demo dataset where `datasets` imports, else random tokens of demo-like lengths."
    if path and Path(path).is_file():
        d = json.loads(Path(path).read_text())
        return d['examples'][:n], int(d['block_size']), f'demo examples from {path}'
    if importlib.util.find_spec('datasets') is not None:
        try:
            p = write_data(Path(tempfile.mkdtemp())/'data.json', block, n)
            return load_examples(p, block, n)[0], block, 'demo dataset (built here)'
        except Exception as e: why = f'demo dataset not built ({type(e).__name__}: {str(e)[:80]})'
    else: why = 'no data file and no datasets package'
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        L = int(torch.randint(block // 2, block + 1, (1,), generator=g)); P = L // 2
        ids = torch.randint(3, vocab, (L,), generator=g).tolist()
        rows.append(dict(input_ids=ids, labels=[-100] * P + ids[P:], prompt_len=P))
    return rows, block, f'random tokens ({why})'


def build_model_dir(path, model:str|None=None, config:dict|None=None, seed:int=0) -> tuple[Path, str]:
    "A model folder to load from: `model` if it is one, else a random Gemma 3 of `config` (Gemma 3 270M's) saved in bf16."
    if model and Path(model).is_dir(): return Path(model), str(model)
    from transformers import Gemma3TextConfig, Gemma3ForCausalLM
    torch.manual_seed(seed)
    c = Gemma3TextConfig(**(config or GEMMA3_270M))
    Gemma3ForCausalLM(c).to(torch.bfloat16 if torch.cuda.is_available() else torch.float32).save_pretrained(path)
    return Path(path), f"random Gemma 3 ({c.num_hidden_layers} layers, width {c.hidden_size}, vocab {c.vocab_size}) from a config"


def backend_status(name:str, device:str) -> str|None:
    "Why backend `name` cannot run here (None: it can)."
    if name == 'unsloth':
        if device != 'cuda': return 'unsloth needs a CUDA GPU'
        if importlib.util.find_spec('unsloth') is None: return 'unsloth is not installed (pip install -r requirements-unsloth.txt)'
        try: import unsloth  # noqa: F401  (it patches transformers when imported; import errors are reported, not raised)
        except Exception as e: return f'unsloth does not import ({type(e).__name__}: {str(e)[:120]})'
    elif importlib.util.find_spec('peft') is None: return 'peft is not installed'
    return None


def load_backend(name:str, model_dir, block:int, rank:int, four_bit:bool, precision:str, gc:bool, stop_id:int):
    "The model with LoRA (rank `rank` on every projection, the terminator's row trainable) through backend `name`."
    from chatmimic.train_qlora import QLoRAConfig, load_qlora_model
    cfg = QLoRAConfig(model=str(model_dir), lora_rank=rank, lora_alpha=16.0, load_in_4bit=four_bit, precision=precision, backend=name,
                      gradient_checkpointing=gc, pack=name != 'unsloth')
    class _Tok:  # the vocabulary the examples use is the model's own: no rows to add
        def __len__(self): return 0
    return load_qlora_model(cfg, name, block, _Tok(), stop_id), cfg


def train_steps(model, examples:list[dict], block:int, steps:int, pack:bool, pad_id:int=0, lr:float=1e-4, mark=None) -> dict:
    "`steps` AdamW steps of micro batch 1 on `examples` (packed rows, or one example per row): seconds per step after the first, useful tokens per second."
    from chatmimic.train import PackedCollator, pack_blocks
    c = model.config
    window = getattr(c, 'sliding_window', None) if 'sliding_attention' in (getattr(c, 'layer_types', None) or ()) else None
    L = [len(e['input_ids']) for e in examples]
    bins = pack_blocks(L, block) if pack else [[i] for i in range(len(examples))]
    rows = [dict(input_ids=sum((examples[i]['input_ids'] for i in b), []), lengths=[L[i] for i in b], prompt_lens=[examples[i]['prompt_len'] for i in b],
                 labels=sum(([-100] + examples[i]['labels'][1:] for i in b), [])) for b in bins]
    coll = PackedCollator(pad_id, block if pack else None, False, window, masks=pack)
    dev = model.get_input_embeddings().weight.device
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    times, tokens, losses = [], 0, []
    for s in range(steps):
        if mark: mark(f'step{s}')
        b = coll([rows[s % len(rows)]])
        n = int(b.pop('n_tokens')); b.pop('n_slots')
        b = {k: ({kk: vv.to(dev) for kk, vv in v.items()} if isinstance(v, dict) else v.to(dev)) for k, v in b.items()}
        if dev.type == 'cuda': torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == 'cuda'):
            loss = model(**b).loss
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        if dev.type == 'cuda': torch.cuda.synchronize()
        times.append(time.perf_counter() - t0); tokens += n; losses.append(loss.detach().item())
    t = times[1:] or times
    return dict(steps=steps, seconds_per_step=sum(t) / len(t), tokens_per_s=(tokens - (n if len(times) > 1 else 0)) / sum(t) if sum(t) else None,
                loss_first=losses[0], loss_last=losses[-1], finite=all(math.isfinite(x) for x in losses))


def packed_check(model, examples:list[dict], block:int, pad_id:int=0) -> dict:
    "packing_error on the first examples that fit one block together, each cut to at most a quarter of it."
    from chatmimic.train import packing_error
    ex = [e['input_ids'][:block // 4] for e in examples[:4]]
    P = [min(e['prompt_len'], len(x) // 2) for e, x in zip(examples[:4], ex)]
    model.eval()
    with torch.autocast('cuda', dtype=torch.bfloat16, enabled=torch.cuda.is_available()):
        e = packing_error(model, ex, P, pad_id)
    e['relative'] = e['max_abs_diff'] / max(e['max_abs_logit'], 1e-9)
    return e


def estimate(model_dir, cfg, block:int) -> dict:
    "03a's memory estimate (bytes by part, total) for this model, block, micro batch 1 and gradient checkpointing."
    from dataclasses import replace
    from chatmimic.qlora_plan import qlora_plan
    plan = qlora_plan(replace(cfg, block_size=block, micro_batch=1, backend='peft'), n_tokens=1)
    return plan['memory']['qlora']


def check_backend(name:str, model_dir, examples:list[dict], block:int, steps:int=6, rank:int=32, gc:bool=True, device:str='cuda', mark=None) -> dict:
    "One backend: skipped with its reason, or its packed check, training steps, peak memory and the estimate."
    why = backend_status(name, device)
    if why: return dict(backend=name, status='skipped', reason=why)
    four = importlib.util.find_spec('bitsandbytes') is not None and device == 'cuda'
    r = dict(backend=name, status='ok', load_in_4bit=four, quantization='4-bit NF4' if four else '16-bit base (bitsandbytes ' + ('not installed)' if device == 'cuda' else 'on a GPU only here)'))
    try:
        if device == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        model, cfg = load_backend(name, model_dir, block, rank, four, 'bf16' if device == 'cuda' else 'fp32', gc, STOP_ID)
        r['attention'] = getattr(model.config, '_attn_implementation', None)
        r['packed'] = packed_check(model, examples, block)
        r['train'] = train_steps(model, examples, block, steps, pack=name != 'unsloth', mark=mark)
        r['train']['packed_rows'] = name != 'unsloth'
        if device == 'cuda': r['peak_allocated'], r['peak_reserved'] = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        r['estimate'] = estimate(model_dir, cfg, block)
        del model
    except Exception as e:  # a backend that fails is reported, and the next one still runs
        r.update(status='failed', reason=f'{type(e).__name__}: {str(e)[:300]}')
    return r


GiB = 2**30

def table(rows:list[dict]) -> str:
    "The results as a small text table."
    head = ('backend', 'status', 'base', 'packed max|Δ|/max|logit|', 's/step', 'tokens/s', 'peak alloc GiB', 'peak reserved GiB', 'estimate GiB', 'reserved/estimate')
    f = lambda v, spec: '-' if v is None else format(v, spec)
    out = []
    for r in rows:
        if r['status'] != 'ok': out.append((r['backend'], f"{r['status']}: {r.get('reason', '')}", '', '', '', '', '', '', '', '')); continue
        est, res = r.get('estimate', {}).get('total'), r.get('peak_reserved')
        out.append((r['backend'], 'ok', '4-bit' if r['load_in_4bit'] else '16-bit', f"{r['packed']['max_abs_diff']:.2e} / {r['packed']['max_abs_logit']:.1f}",
                    f(r['train']['seconds_per_step'], '.3f'), f(r['train']['tokens_per_s'], ',.0f'), f(r.get('peak_allocated') and r['peak_allocated'] / GiB, '.2f'),
                    f(res and res / GiB, '.2f'), f(est and est / GiB, '.2f'), f(res / est if res and est else None, '.2f')))
    w = [max(len(str(x)) for x in col) for col in zip(head, *out)]
    return '\n'.join('  '.join(str(x).ljust(n) for x, n in zip(row, w)).rstrip() for row in (head, *out))


def run(out, data=None, model=None, steps:int=6, rank:int=32, n:int=64, block:int=256, gc:bool=True, device:str='cuda', config:dict|None=None,
        budget_s:float=420.0, power_interval:float=0.5) -> dict:
    "The whole check into folder `out`: gpu_check.json, power.csv, power.json; returns the results."
    from chatmimic.power import PowerSampler
    t0, out = time.perf_counter(), Path(out)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    examples, block, source = load_examples(data, block, n, (config or GEMMA3_270M)['vocab_size'])
    res = dict(device=torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu', torch=torch.__version__, data=source, examples=len(examples), block=block,
               steps=steps, lora_rank=rank, gradient_checkpointing=gc, backends=[])
    import transformers
    res['transformers'] = transformers.__version__
    with tempfile.TemporaryDirectory() as tmp, PowerSampler(out, interval=power_interval, sensor='nvml' if device == 'cuda' else 'auto', phase='load') as power:
        model_dir, res['model'] = build_model_dir(Path(tmp)/'model', model, config)
        for name in BACKENDS:
            if time.perf_counter() - t0 > budget_s:
                res['backends'].append(dict(backend=name, status='skipped', reason=f'time budget of {budget_s:.0f} s spent')); continue
            power.phase(f'{name}')
            res['backends'].append(check_backend(name, model_dir, examples, block, steps, rank, gc, device, mark=lambda s, nm=name: power.phase(f'{nm}-{s}')))
        power.phase('done')
    res['power'] = power.summary
    res['seconds'] = round(time.perf_counter() - t0, 1)
    from chatmimic.core import atomic_write
    with atomic_write(out/'gpu_check.json') as f: json.dump(res, f, indent=1, default=str)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default=str(ROOT/'runs'/'gpu_check'), help='folder for gpu_check.json, power.csv, power.json (default runs/gpu_check)')
    p.add_argument('--data', default=str(ROOT/'runs'/'gpu_check'/'data.json'), help='examples written by --write-data (default runs/gpu_check/data.json)')
    p.add_argument('--write-data', metavar='FILE', help="write the demo's examples to FILE and exit (needs datasets and the gemma3-270m package: run it here)")
    p.add_argument('--model', help="a local model folder (default: Gemma 3 270M's architecture, random weights)")
    p.add_argument('--steps', type=int, default=6, help='training steps per backend (default 6)')
    p.add_argument('--rank', type=int, default=32, help='LoRA rank (default 32, the study)')
    p.add_argument('--block', type=int, default=256, help='block size when the examples are not read from a file (default 256, the demo)')
    p.add_argument('--no-gc', action='store_true', help='no gradient checkpointing')
    a = p.parse_args(argv)
    if a.write_data:
        print(f'wrote {write_data(a.write_data, a.block)}'); return 0
    line = no_gpu_line()
    if line: print(line); return 0
    res = run(a.out, a.data, a.model, a.steps, a.rank, block=a.block, gc=not a.no_gc)
    print(f"gpu_check on {res['device']} (torch {res['torch']}, transformers {res['transformers']}); model: {res['model']}; data: {res['data']}, block {res['block']}")
    print(table(res['backends']))
    pw = res.get('power') or {}
    print(f"power: {pw.get('sensor')}, {pw.get('energy_j') or 0:,.0f} J in {res['seconds']} s -> {Path(a.out)/'power.csv'}; {Path(a.out)/'gpu_check.json'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
