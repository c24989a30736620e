"QLoRA trainer: the study's settings and parameter count, the stop token in the labels, adapters that reload identically, the stop rate, merge, GGUF, resume after SIGKILL."
import json, os, signal, subprocess, time
from pathlib import Path

import pytest, torch, yaml
from conftest import run_chatmimic, CHATMIMIC

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def gemma_ds():
    "The demo dataset with the Gemma 3 270M tokenizer and its chat template (built once, cached)."
    from chatmimic.train import demo_dataset
    return demo_dataset('qlora', 'gemma3-270m', 'model', block_size=128)


@pytest.fixture(scope='module')
def tiny():
    "gemma3-tiny: a random two-layer Gemma 3 with the Gemma tokenizer's vocabulary, built from a config (chatmimic.models)."
    from chatmimic.models import model_source
    return model_source('gemma3-tiny')


TABLE3_QLORA = dict(model='google/gemma-2b', learning_rate=1e-4, weight_decay=0.01, lr_scheduler='linear', epochs=1.0, max_steps=-1,
                    max_grad_norm=1.0, lora_rank=32, lora_alpha=16.0, lora_dropout=0.0, load_in_4bit=True, block_size=1024, val_examples=0,
                    lora_targets=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'])  # Table 3 (rank/alpha: see 03)


def test_paper_config_and_defaults_are_table3(tmp_path):
    "`chatmimic train-qlora --config configs/paper.yaml` and the bare command both resolve to Table 3's QLoRA run; a misspelt key is refused."
    from chatmimic.cli import stage_parser
    from chatmimic.core import UserError, build_config, config_from_args
    p = stage_parser('train_qlora')
    for argv in (['--config', str(ROOT/'configs'/'paper.yaml')], []):
        c = config_from_args('train_qlora', p.parse_args([*argv, '--dataset', str(tmp_path), '-o', 'run']), cwd=tmp_path)
        assert {k: getattr(c, k) for k in TABLE3_QLORA} == TABLE3_QLORA, argv
        assert c.micro_batch * c.grad_accum == 64 and c.gradient_checkpointing and c.eval_every >= 1, argv  # effective batch 64; fits 8 GB
    with pytest.raises(UserError, match='did you mean lora_rank'): build_config('train_qlora', overrides=['train_qlora.lora_rnak=16'])
    r = run_chatmimic('train-qlora', '--dataset', tmp_path, '-o', tmp_path/'o', 'lora_rnak=16', '--dry-run')
    assert r.returncode == 2 and 'did you mean lora_rank' in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_dry_run_prints_the_study_count():
    r = run_chatmimic('train-qlora', '--dry-run')  # the defaults are the study's: google/gemma-2b, rank 32, block 1024
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert '39,223,296 trainable' in out and '2,506,172,416' in out
    assert 'q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj' in out and 'NF4' in out
    lines = [l.strip() for l in out.splitlines()]
    assert any(l.startswith('this run (micro batch 1, gradient checkpointing)') and ' fits ' in l for l in lines), out
    assert any(l.startswith('this run (micro batch 1, no gradient checkpointing)') and 'does NOT fit' in l for l in lines), out
    assert any(l.startswith('full fine-tuning (micro batch 1)') and 'does NOT fit' in l for l in lines), out


def test_dry_run_paper_config():
    r = run_chatmimic('train-qlora', '--config', ROOT/'configs'/'paper.yaml', '--dry-run', cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert 'google/gemma-2b' in r.stdout and '39,223,296 trainable' in r.stdout and 'block 1024' in r.stdout, r.stdout
    lines = [l.strip() for l in r.stdout.splitlines()]
    assert any(l.startswith('QLoRA (micro batch 1, gradient checkpointing)') or l.startswith('this run (micro batch 1, gradient checkpointing)') for l in lines if ' fits ' in l), r.stdout
    assert any(l.startswith('full fine-tuning') and 'does NOT fit' in l for l in lines), r.stdout


def test_unsloth_without_gpu_is_a_user_error(tmp_path):
    if torch.cuda.is_available(): pytest.skip('a GPU is present')
    r = run_chatmimic('train-qlora', '--backend', 'unsloth', '--out', tmp_path/'run', '--max-steps', '1')
    assert r.returncode == 2 and 'needs a CUDA GPU' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path/'run').exists()  # refused before anything is built or written


def test_labels_train_end_of_turn(gemma_ds):
    "Every response's last trained label is <end_of_turn>, also after packing; a lost terminator is caught."
    from chatmimic.train import load_prepared, pack_dataset
    from chatmimic.train_qlora import ends_with_stop
    dsd, stats, tok = load_prepared(gemma_ds)
    stop = stats['stop_token_id']
    assert tok.convert_ids_to_tokens(stop) == '<end_of_turn>'
    assert all(ends_with_stop(dsd[s], stop) for s in dsd)
    packed = pack_dataset(dsd['train'], 256)
    for r in packed:
        ends = torch.cumsum(torch.tensor(r['lengths']), 0) - 1
        assert all(r['labels'][int(e)] == stop for e in ends)
    broken = dsd['train'].select(range(3)).map(lambda r: {'labels': r['labels'][:-1] + [-100]})
    assert not ends_with_stop(broken, stop)


def test_train_reload_merge(tiny, gemma_ds, tmp_path):
    "A 4-bit QLoRA run on a tiny Gemma 3: safetensors adapter, the stop rate measured, identical outputs after reload, merged model close to it."
    from transformers import AutoModelForCausalLM
    import bitsandbytes as bnb
    from chatmimic.train_qlora import QLoRAConfig, run_qlora, load_qlora, merge
    from chatmimic.train import load_prepared
    out = tmp_path/'run'
    cfg = QLoRAConfig(dataset=str(gemma_ds), out=str(out), model=str(tiny), learning_rate=1e-2, grad_accum=1, max_steps=3, val_examples=4,
                      eval_every=0, save_every=0, log_every=1, progress=False, gradient_checkpointing=True, backend='peft', lora_rank=8,
                      stop_examples=3, max_new_tokens=4)
    model, tok, m = run_qlora(cfg, quiet=True)
    assert isinstance(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear4bit)
    assert m['kind'] == 'qlora' and m['stop'] == 'done' and m['steps'] == 3 and m['val_loss'] < m['val_loss_start']
    assert (out/'model'/'adapter_model.safetensors').exists() and not (out/'model'/'adapter_model.bin').exists()
    info = json.loads((out/'model'/'chatmimic.json').read_text())
    assert info['load_in_4bit'] and info['backend'] == 'peft' and info['backend_reason']
    plan = json.loads((out/'plan.json').read_text())
    assert plan['trainable_params'] + plan['token_params'] == m['trainable_params'] and plan['trainable_tokens'] == len(info['trainable_tokens']) == 1  # LoRA and the terminator's row
    sr = json.loads((out/'stop_rate.json').read_text())
    assert sr['base']['n'] == sr['tuned']['n'] == 3 and all(sr[k]['max_new_tokens'] == 4 for k in sr)
    assert yaml.safe_load((out/'params.yaml').read_text())['validation_examples'] == 4
    x = torch.tensor([load_prepared(gemma_ds)[0]['test'][0]['input_ids']])
    model.eval()
    with torch.no_grad(): ref = model(input_ids=x).logits
    back, _, _ = load_qlora(out)
    with torch.no_grad(): assert torch.equal(back(input_ids=x).logits, ref)
    base, _, _ = load_qlora(out, 'base')
    with torch.no_grad(): assert not torch.equal(base(input_ids=x).logits, ref)  # the adapter changed something
    mm = AutoModelForCausalLM.from_pretrained(merge(out)).eval()
    assert not hasattr(mm.config, 'quantization_config') or mm.config.quantization_config is None
    with torch.no_grad(): got = mm(input_ids=x).logits
    assert (got - ref).abs().max() < 1e-3 * ref.abs().max()


def test_nan_stops_the_run(tiny, gemma_ds, tmp_path):
    "The shared NaN stop also ends a QLoRA run, with one clear error."
    from chatmimic.train import train, load_prepared, NonFiniteLoss
    from chatmimic.train_qlora import QLoRAConfig, load_qlora_model
    cfg = QLoRAConfig(dataset=str(gemma_ds), out=str(tmp_path/'run'), model=str(tiny), grad_accum=1, max_steps=3, eval_every=0,
                      save_every=0, progress=False, gradient_checkpointing=False, backend='peft', lora_rank=4, val_examples=2)
    model = load_qlora_model(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'lora_B' in n: p.fill_(float('nan'))
    dsd, stats, tok = load_prepared(gemma_ds)
    with pytest.raises(NonFiniteLoss, match='NaN or infinite'): train(model, tok, dsd, stats, cfg, dict(kind='qlora', base=str(tiny), load_in_4bit=True))
    assert json.loads((tmp_path/'run'/'metrics.json').read_text())['stop'] == 'nan'


def test_resume_after_sigkill(tiny, gemma_ds, tmp_path):
    "Killed with SIGKILL after a checkpoint, `--resume` continues from it and finishes the same number of steps."
    out = tmp_path/'run'
    args = ['train-qlora', '--dataset', gemma_ds, '--out', out, '--model', tiny, '--max-steps', '16', 'grad_accum=1', 'save_every=2',
            'eval_every=0', '--no-gradient-checkpointing', 'lora_rank=4', 'val_examples=4', 'stop_examples=0', '-q']
    p = subprocess.Popen([str(CHATMIMIC), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    t0 = time.time()
    while not list((out/'checkpoints').glob('checkpoint-4')) and p.poll() is None and time.time() - t0 < 300: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not (out/'metrics.json').exists(), 'the run finished before it was killed'
    done = sorted(int(c.name.split('-')[1]) for c in (out/'checkpoints').glob('checkpoint-*'))
    assert done and done[-1] >= 4
    r = run_chatmimic(*args, '--resume')
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['steps'] == 16 and m['resumed_from'].startswith('checkpoint-')
    assert int(m['resumed_from'].split('-')[1]) >= done[-1]
    steps = [json.loads(l)['step'] for l in (out/'metrics.jsonl').read_text().splitlines() if 'train_loss' in json.loads(l)]
    assert steps == sorted(set(steps)) and steps[-1] == 16


def _converter():
    d = os.environ.get('LLAMA_CPP_DIR') or ROOT/'.cache'/'llama.cpp'  # make exports LLAMA_CPP_DIR; `make install` unpacks it there
    return d if (Path(d)/'convert_hf_to_gguf.py').exists() else None


@pytest.fixture(scope='module')
def tiny_spm():
    "gemma3-tiny-spm: gemma3-tiny with a 512-piece SentencePiece vocabulary (tokenizer.model), and the demo dataset tokenized with it."
    from chatmimic.models import model_source
    from chatmimic.train import demo_dataset
    return Path(model_source('gemma3-tiny-spm')), demo_dataset('qlora', 'gemma3-tiny-spm', 'model', block_size=128)


def test_gguf_export_loads_back(tiny_spm, tmp_path):
    """The merged model exported to GGUF by llama.cpp's converter loads back in transformers (config and weights read from the
    file) with the same logits. On the 512-piece vocabulary: Gemma's 262k tokens cost gguf's reader about 40 s a read, twice."""
    assert _converter(), "llama.cpp's convert_hf_to_gguf.py not found: run make install (it unpacks it into .cache/llama.cpp) or set LLAMA_CPP_DIR"
    from transformers import AutoModelForCausalLM
    from transformers.integrations.gguf.reader import read_gguf_metadata
    from chatmimic.train_qlora import QLoRAConfig, run_qlora, merge, export_gguf
    from chatmimic.train import load_prepared
    tiny, ds = tiny_spm
    out = tmp_path/'run'
    cfg = QLoRAConfig(dataset=str(ds), out=str(out), model=str(tiny), learning_rate=1e-2, grad_accum=1, max_steps=1, val_examples=2,
                      eval_every=0, save_every=0, progress=False, gradient_checkpointing=False, backend='peft', lora_rank=4, stop_examples=0)
    run_qlora(cfg, quiet=True)
    mdir = merge(out)
    assert (mdir/'tokenizer.model').read_bytes() == (tiny/'tokenizer.model').read_bytes()  # merge() keeps the base's SentencePiece model, which the converter reads
    g = export_gguf(mdir, outtype='f32', llama_cpp=_converter())
    assert g.exists() and 'FROM ./model-f32.gguf' in g.with_suffix('.Modelfile').read_text()
    meta, _ = read_gguf_metadata(str(g), string_arrays={'tokenizer.ggml.tokens'})  # the vocabulary went in, from tokenizer.model
    assert meta['general.architecture'] == 'gemma3' and meta['tokenizer.ggml.model'] == 'llama'
    assert len(meta['tokenizer.ggml.tokens']) == 512 and meta['tokenizer.ggml.tokens'][4:6] == ['<start_of_turn>', '<end_of_turn>']
    x = torch.tensor([load_prepared(ds)[0]['test'][0]['input_ids']])
    a = AutoModelForCausalLM.from_pretrained(mdir).eval()
    b = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name).eval()
    assert type(b).__name__ == 'Gemma3ForCausalLM' and b.config.vocab_size == 512 and b.config.num_hidden_layers == 2
    with torch.no_grad(): la, lb = a(input_ids=x).logits, b(input_ids=x).logits
    assert torch.allclose(la, lb, atol=1e-4) and not torch.allclose(la, torch.zeros_like(la)), (la - lb).abs().max()


def test_gguf_export_gemma_vocabulary(tiny, tmp_path):
    """Gemma 3's own 262,144-token vocabulary (tokenizer.json only, as a gemma3-270m run's merged folder has it) goes through the same
    export: llama.cpp's converter recognizes its pre-tokenizer and writes every token, its merges and the full embedding."""
    assert _converter(), "llama.cpp's convert_hf_to_gguf.py not found: run make install (it unpacks it into .cache/llama.cpp) or set LLAMA_CPP_DIR"
    import shutil
    from transformers.integrations.gguf.reader import GgufHeader, read_gguf_metadata
    from chatmimic.train_qlora import export_gguf
    src = tmp_path/'merged'
    shutil.copytree(tiny, src)
    assert not (src/'tokenizer.model').exists()  # the BPE path of the converter, the one a gemma3-270m run takes
    g = export_gguf(src, outtype='f32', llama_cpp=_converter())
    meta, _ = read_gguf_metadata(str(g))  # transformers' own header reader: string arrays are counted, not parsed
    assert meta['tokenizer.ggml.model'] == 'gpt2' and meta['tokenizer.ggml.pre'] and meta['tokenizer.ggml.tokens'] == 262_144
    assert meta['tokenizer.ggml.merges'] > 500_000 and (meta['tokenizer.ggml.bos_token_id'], meta['tokenizer.ggml.eos_token_id']) == (2, 1)
    shapes = {t.name: t.shape for t in GgufHeader.from_file(str(g)).tensors}
    assert shapes['token_embd.weight'] == (262_144, 64)
