"bench/gpu_check.py (issue 13.9): one line and exit 0 without a GPU; every piece that can run on a CPU runs here (the data file, the model of Gemma 3 270M's shape, a backend's packed check, training steps and estimate, a skipped backend with its reason, the table and the JSON), and it imports where `datasets` is not installed."
import importlib.util, json, subprocess, sys
from pathlib import Path

import pytest, torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'bench'/'gpu_check.py'


@pytest.fixture(scope='module')
def gc():
    spec = importlib.util.spec_from_file_location('gpu_check', SCRIPT)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m


def tiny(gc):
    "Gemma 3 270M's config made small: two layers (one sliding, window 16), 300 tokens (the terminator's id 106 among them)."
    return dict(gc.GEMMA3_270M, vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, head_dim=32,
                sliding_window=16, max_position_embeddings=512, layer_types=['sliding_attention', 'full_attention'])


def test_no_gpu_is_one_line_and_exit_0(tmp_path):
    if torch.cuda.is_available(): pytest.skip('a GPU is present: the check itself would run')
    r = subprocess.run([sys.executable, str(SCRIPT), '--out', str(tmp_path/'out')], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 and 'no CUDA GPU' in r.stdout, r.stdout
    assert 'Traceback' not in r.stderr and not (tmp_path/'out').exists()


def test_imports_and_reads_data_without_datasets(tmp_path):
    "The GPU machine has no `datasets`: the script, the trainer modules it uses and the power sampler import without it, and the data file is read."
    (tmp_path/'data.json').write_text(json.dumps(dict(block_size=64, stop_token_id=106, examples=[dict(input_ids=[5, 6, 7], labels=[-100, 6, 7], prompt_len=1)])))
    code = ("import sys, importlib.util; sys.modules['datasets'] = None\n"  # import datasets now fails, as where it is not installed
            f"spec = importlib.util.spec_from_file_location('g', {str(SCRIPT)!r}); g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)\n"
            "import chatmimic.train_qlora, chatmimic.power, chatmimic.qlora_plan\n"
            f"ex, block, src = g.load_examples({str(tmp_path/'data.json')!r})\n"
            "assert len(ex) == 1 and block == 64 and 'datasets' not in [m for m in sys.modules if sys.modules[m] is not None]\nprint('ok')")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr[-2000:]


def test_architecture_is_gemma3_270m(gc):
    "The model built on the GPU machine has Gemma 3 270M's architecture (compared with the PyPI package's converted config)."
    from chatmimic.models import model_config
    c = model_config('gemma3-270m')
    for k, v in gc.GEMMA3_270M.items():
        if k in ('rms_norm_eps',): assert abs(getattr(c, k) - v) < 1e-9, k
        else: assert getattr(c, k) == v, (k, getattr(c, k), v)


def test_data_file_is_the_demos_examples(gc, tmp_path):
    from chatmimic.train import demo_dataset, load_prepared
    p = gc.write_data(tmp_path/'data.json', 256, 8)
    ex, block, src = gc.load_examples(p)
    dsd, stats, _ = load_prepared(demo_dataset('qlora', 'gemma3-270m', 'model', 256))
    assert block == 256 and len(ex) == 8 and 'demo examples' in src
    assert [e['input_ids'] for e in ex] == dsd['train'][:8]['input_ids'] and json.loads(p.read_text())['stop_token_id'] == stats['stop_token_id'] == gc.STOP_ID


def test_backends_on_cpu(gc, tmp_path):
    "peft on a CPU: the packed check holds, a few steps train, the estimate is there; unsloth is skipped with its reason."
    model_dir, what = gc.build_model_dir(tmp_path/'m', config=tiny(gc))
    assert 'random Gemma 3 (2 layers' in what
    g = torch.Generator().manual_seed(0)
    ex = []
    for L in (40, 50, 30, 60, 20, 45):
        ids = torch.randint(3, 300, (L,), generator=g).tolist()
        ex.append(dict(input_ids=ids, labels=[-100] * (L // 2) + ids[L // 2:], prompt_len=L // 2))
    r = gc.check_backend('peft', model_dir, ex, 128, steps=3, rank=4, gc=False, device='cpu')
    assert r['status'] == 'ok', r
    assert r['packed']['relative'] < 1e-5 and r['attention'] == 'sdpa'
    assert r['train']['steps'] == 3 and r['train']['finite'] and r['train']['tokens_per_s'] > 0
    assert r['estimate']['total'] > r['estimate']['parts']['cuda_overhead']
    u = gc.check_backend('unsloth', model_dir, ex, 128, device='cpu')
    assert u == dict(backend='unsloth', status='skipped', reason='unsloth needs a CUDA GPU')
    t = gc.table([u, r])
    assert t.splitlines()[1].startswith('unsloth  skipped: unsloth needs a CUDA GPU') and t.splitlines()[2].startswith('peft     ok')


def test_run_writes_json(gc, tmp_path):
    "The whole run on a CPU with the tiny model: gpu_check.json with both backends, the data's source and the time."
    (tmp_path/'data.json').write_text(json.dumps(dict(block_size=64, stop_token_id=106, examples=[
        dict(input_ids=list(range(3, 3 + n)), labels=[-100] * (n // 2) + list(range(3 + n // 2, 3 + n)), prompt_len=n // 2) for n in (20, 30, 25, 15)])))
    res = gc.run(tmp_path/'out', tmp_path/'data.json', steps=2, rank=4, gc=False, device='cpu', config=tiny(gc), power_interval=5.0)
    j = json.loads((tmp_path/'out'/'gpu_check.json').read_text())
    assert [b['backend'] for b in j['backends']] == ['unsloth', 'peft'] and j['backends'][1]['status'] == 'ok'
    assert j['data'].startswith('demo examples from') and j['block'] == 64 and j['seconds'] == res['seconds']
