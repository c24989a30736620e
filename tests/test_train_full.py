"chatmimic train-full as a user runs it: the study's settings, resume after SIGKILL, the NaN stop, two processes (accelerate launch) against one, bad input, exact packing, the cached demo run."
import json, os, signal, socket, subprocess, time
from pathlib import Path

import numpy as np, pytest, torch, datasets
from safetensors.torch import load_file
from conftest import CHATMIMIC, run_chatmimic, assert_user_error

from chatmimic.core import UserError, build_config
from chatmimic.train import (PackedCollator, TrainConfig, NonFiniteLoss, demo_dataset, load_prepared, pack_blocks, pack_dataset,
                             padding_share, read_metrics, train)

ROOT = Path(__file__).resolve().parents[1]
TINY = ['model=gpt2-demo', '--demo-layers', '1', '--demo-embd', '32', '--demo-heads', '2', '--learning-rate', '3e-3', '--log-every', '1', '-q']

@pytest.fixture(scope='module')
def ds():
    return demo_dataset(block_size=256)

def weights(run):
    return load_file(str(Path(run)/'model'/'model.safetensors'))

def max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)

# --- the study's settings -------------------------------------------------------------------------------------------

TABLE3_FULL = dict(model='GroNLP/gpt2-small-italian', learning_rate=1e-5, weight_decay=0.01, lr_scheduler='linear', micro_batch=8, grad_accum=8,
                   epochs=1.0, max_steps=-1, max_grad_norm=1.0, dropout=0.1, block_size=1024, val_examples=0)  # Table 3, copied from the paper

def test_paper_config_and_defaults_are_table3(tmp_path):
    "`chatmimic train-full --config configs/paper.yaml` and the bare command both resolve to Table 3's full fine-tuning."
    from chatmimic.cli import stage_parser
    from chatmimic.core import config_from_args
    p = stage_parser('train_full')
    for argv in (['--config', str(ROOT/'configs'/'paper.yaml')], []):
        c = config_from_args('train_full', p.parse_args([*argv, '--dataset', str(tmp_path), '-o', 'run']), cwd=tmp_path)
        assert {k: getattr(c, k) for k in TABLE3_FULL} == TABLE3_FULL, argv
        assert c.eval_every >= 1 and c.out == str(tmp_path/'run')  # Figure 4 gets a curve; -o is the caller's path
    with pytest.raises(UserError, match='did you mean dropout'): build_config('train_full', overrides=['train_full.dropuot=0.2'])

# --- resume ---------------------------------------------------------------------------------------------------------

def test_resume_after_sigkill(ds, tmp_path):
    "A real run killed with SIGKILL after its second checkpoint, resumed, ends where an uninterrupted run ends."
    common = ['train-full', '--dataset', ds, *TINY, '--micro-batch', '2', '--grad-accum', '2', '--max-steps', '24',
              '--save-every', '4', '--eval-every', '8', '--dropout', '0.1']  # dropout on: the RNG state must be restored too
    ref = run_chatmimic(*common, '--out', tmp_path/'ref')
    assert ref.returncode == 0, ref.stderr
    run = tmp_path/'run'
    p = subprocess.Popen([str(CHATMIMIC), *map(str, common), '--out', str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not (run/'checkpoints'/'checkpoint-8').exists():
        assert p.poll() is None, p.stderr.read().decode()
        assert time.time() - t0 < 300, 'no checkpoint-8 after 300 s'
        time.sleep(0.05)
    assert p.poll() is None, 'the run finished before it could be killed'
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert not (run/'metrics.json').exists() and not (run/'model').exists()  # it really died mid-way
    res = run_chatmimic(*common, '--out', run, '--resume')
    assert res.returncode == 0, res.stderr
    a, b = json.loads((tmp_path/'ref'/'metrics.json').read_text()), json.loads((run/'metrics.json').read_text())
    assert b['resumed_from'] in ('checkpoint-8', 'checkpoint-12', 'checkpoint-16', 'checkpoint-20'), b['resumed_from']
    assert (a['steps'], b['steps']) == (24, 24)
    assert abs(a['train_loss'] - b['train_loss']) < 1e-4 and abs(a['val_loss'] - b['val_loss']) < 1e-4, (a, b)
    assert a['tokens'] == b['tokens']
    assert [r['step'] for r in read_metrics(run)] == [r['step'] for r in read_metrics(tmp_path/'ref')]  # no line twice, none lost
    assert max_diff(weights(tmp_path/'ref'), weights(run)) < 1e-4

def test_resume_picks_newest_complete_checkpoint(ds, tmp_path):
    "A checkpoint cut short (its staging folder) is ignored and removed; the newest complete one is used."
    common = ['train-full', '--dataset', ds, *TINY, '--micro-batch', '2', '--grad-accum', '1', '--max-steps', '4', '--save-every', '2',
              '--eval-every', '0', '--out', tmp_path/'r']
    assert run_chatmimic(*common).returncode == 0
    ck = tmp_path/'r'/'checkpoints'
    assert sorted(p.name for p in ck.iterdir()) == ['checkpoint-2', 'checkpoint-4']
    (ck/'.tmp-checkpoint-6'/'checkpoint-6').mkdir(parents=True)  # what a crash during the save at step 6 leaves
    r = run_chatmimic(*common[:-4], '--max-steps', '6', '--eval-every', '0', '--out', tmp_path/'r', '--resume')
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path/'r'/'metrics.json').read_text())
    assert (m['resumed_from'], m['steps']) == ('checkpoint-4', 6)
    assert not (ck/'.tmp-checkpoint-6').exists()

# --- NaN stop -------------------------------------------------------------------------------------------------------

def test_nan_stops_and_keeps_last_good_checkpoint(ds, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel
    class Boom(GPT2LMHeadModel):
        calls = 0
        def forward(self, input_ids=None, labels=None, **kw):
            out = super().forward(input_ids=input_ids, labels=labels, **kw)
            if self.training:
                Boom.calls += 1
                if Boom.calls > 5: out.loss = out.loss * float('inf')  # the 6th micro-batch: step 3
            return out
    dsd, stats, tok = load_prepared(ds)
    m = Boom(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=1, n_head=2))
    cfg = TrainConfig(dataset=str(ds), out=str(tmp_path/'nan'), micro_batch=2, grad_accum=2, max_steps=8, save_every=2, eval_every=0,
                      log_every=1, learning_rate=1e-3, progress=False)
    with pytest.raises(NonFiniteLoss) as e: train(m, tok, dsd, stats, cfg, dict(kind='full', model='boom', base=None))
    assert 'at step 3' in str(e.value) and 'checkpoint-2' in str(e.value), str(e.value)
    out = tmp_path/'nan'
    assert sorted(p.name for p in (out/'checkpoints').iterdir()) == ['checkpoint-2']  # step 3's weights never saved
    assert json.loads((out/'metrics.json').read_text())['stop'] == 'nan'
    assert not (out/'model').exists()
    assert all(np.isfinite(r.get('train_loss', 0)) for r in read_metrics(out))

# --- two processes --------------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_two_processes_match_one(ds, tmp_path):
    """Two gloo processes (micro-batch 2 each) against one (micro-batch 4), same effective batch of 8: the same blocks
    reach each optimizer step, the loss is normalised by the tokens of all processes, so only the order of float sums
    differs: losses and weights agree to 1e-4 (measured: about 1e-6)."""
    common = ['train-full', '--dataset', ds, *TINY, '--grad-accum', '2', '--max-steps', '4', '--save-every', '0', '--eval-every', '0',
              '--dropout', '0']  # dropout draws differ between processes by design; off, the runs must agree
    one = run_chatmimic(*common, '--micro-batch', '4', '--out', tmp_path/'one')
    assert one.returncode == 0, one.stderr
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    # the README's command with the shipped DDP config: accelerate's launcher starts torch.distributed's, gloo on a CPU
    two = subprocess.run([str(CHATMIMIC.with_name('accelerate')), 'launch', '--config_file', str(ROOT/'configs'/'accelerate'/'ddp.yaml'),
                          '--num_processes', '2', '--main_process_port', str(free_port()), '-m', 'chatmimic.cli',
                          *map(str, common), '--micro-batch', '2', '-o', str(tmp_path/'two')],
                         capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = read_metrics(tmp_path/'one'), read_metrics(tmp_path/'two')
    la, lb = [r['train_loss'] for r in a if 'train_loss' in r], [r['train_loss'] for r in b if 'train_loss' in r]
    assert len(la) == len(lb) == 4
    assert np.allclose(la, lb, atol=1e-4), (la, lb)
    ma, mb = json.loads((tmp_path/'one'/'metrics.json').read_text()), json.loads((tmp_path/'two'/'metrics.json').read_text())
    assert ma['tokens'] == mb['tokens']  # useful tokens summed over both processes
    assert abs(ma['val_loss'] - mb['val_loss']) < 1e-4
    assert max_diff(weights(tmp_path/'one'), weights(tmp_path/'two')) < 1e-4

# --- bad input ------------------------------------------------------------------------------------------------------

def test_bad_inputs(ds, tmp_path):
    empty = tmp_path/'empty'; empty.mkdir()
    assert_user_error(run_chatmimic('train-full', '--dataset', empty, '--out', tmp_path/'o1', '-q'), empty, tmp_path/'o1')
    f = tmp_path/'notes.txt'; f.write_text('x')
    assert_user_error(run_chatmimic('train-full', '--dataset', ds, '--out', f, '-q'), f)
    full = tmp_path/'stuff'; full.mkdir(); (full/'a.txt').write_text('x')
    assert_user_error(run_chatmimic('train-full', '--dataset', ds, '--out', full, '-q'), full)
    cfg = tmp_path/'missing.yaml'
    assert_user_error(run_chatmimic('train-full', '--dataset', ds, '--out', tmp_path/'o2', '--config', cfg, '-q'), cfg, tmp_path/'o2')
    r = run_chatmimic('train-full', '--dataset', ds, '--out', tmp_path/'o3', '--learning-rate', '5', '-q')
    assert r.returncode == 2 and 'learning_rate 5.0' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = run_chatmimic('train-full', '--dataset', ds, '-o', tmp_path/'o5', 'max_stpes=3', '-q')
    assert r.returncode == 2 and 'did you mean max_steps' in r.stderr and not (tmp_path/'o5').exists(), r.stderr
    r = run_chatmimic('train-full', '--dataset', ds, '--out', tmp_path/'o4', '--model', tmp_path/'nomodel', '-q')
    assert_user_error(r, tmp_path/'nomodel')

# --- packing --------------------------------------------------------------------------------------------------------

def short_examples(ds, sizes=(40, 70, 100, 30)):
    "Examples of the demo dataset cut to `sizes` tokens (their prompts to half), so that several share a block."
    d = load_prepared(ds)[0]['train']
    rows = [d[i] for i in range(len(sizes))]
    return datasets.Dataset.from_dict(dict(input_ids=[r['input_ids'][:n] for r, n in zip(rows, sizes)],
                                           labels=[r['labels'][:n] for r, n in zip(rows, sizes)],
                                           prompt_len=[min(r['prompt_len'], n // 2) for r, n in zip(rows, sizes)], length=list(sizes)))

def check_exact(model, ex, pad_id, block, prefix, window=None, eps=1e-5, rel=False):
    "Packed logits equal each example's own logits within `eps` (relative to the largest logit with `rel`)."
    packed = pack_dataset(ex, block)
    assert len(packed) == 1 and len(packed[0]['lengths']) == len(ex)  # all in one block
    row = packed[0]
    b = PackedCollator(pad_id, block, prefix, window)([row])
    with torch.no_grad():
        lp = model(input_ids=b['input_ids'], attention_mask=b['attention_mask'], position_ids=b['position_ids']).logits[0]
        s = 0
        for n in row['lengths']:
            i = [e for e in ex if e['length'] == n][0]
            u = PackedCollator(pad_id, None, prefix, window)([dict(input_ids=i['input_ids'], labels=i['labels'], lengths=[n], prompt_lens=[i['prompt_len']])])
            lu = model(input_ids=u['input_ids'], attention_mask=u['attention_mask'], position_ids=u['position_ids']).logits[0]
            tol = eps * max(1.0, lu.abs().max().item()) if rel else eps
            assert (lp[s:s + n] - lu).abs().max().item() < tol
            if not prefix:  # the causal mask of a lone example is the model's own: no mask at all gives the same logits
                assert (model(input_ids=u['input_ids']).logits[0] - lu).abs().max().item() < tol
            s += n
    return lp

@pytest.mark.parametrize('prefix', [False, True])
def test_packing_exact_gpt2(ds, prefix):
    from transformers import GPT2Config, GPT2LMHeadModel
    _, _, tok = load_prepared(ds)
    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=64, n_layer=2, n_head=4)).eval()
    ex = short_examples(ds)
    check_exact(m, ex, tok.pad_token_id, 256, prefix)
    b = PackedCollator(tok.pad_token_id, 256, prefix)([pack_dataset(ex, 256)[0]])
    assert b['labels'][0, 0] == -100 and b['labels'][0, 40] == -100  # each example's first token is never a target

def test_packing_exact_gemma3(ds):
    "A Gemma 3 (gemma3-tiny: a sliding-window layer and a full-attention one, as Gemma 3 alternates them): one mask per kind of layer."
    from transformers import AutoModelForCausalLM
    from chatmimic.models import model_source
    m = AutoModelForCausalLM.from_pretrained(model_source('gemma3-tiny'), attn_implementation='sdpa').eval()
    assert m.config.layer_types == ['sliding_attention', 'full_attention']
    ex = short_examples(ds)  # token ids of the demo BPE (< 2000) are valid Gemma ids too: exactness needs no meaning
    check_exact(m, ex, 0, 256, prefix=False, window=m.config.sliding_window, rel=True)  # its own window (512): longer than the block
    m.config.sliding_window = 16  # a window shorter than every example: the sliding mask must matter and still be exact
    for l in m.model.layers: l.self_attn.sliding_window = 16 if l.self_attn.sliding_window else None
    check_exact(m, ex, 0, 256, prefix=False, window=16, rel=True)

def test_padding_share(ds):
    "Packing wastes 5% of the tokens or less, on the demo dataset and on examples of mixed lengths."
    d = load_prepared(ds)[0]['train']
    assert padding_share(pack_dataset(d, 256), 256) <= 0.05
    assert padding_share(pack_dataset(d, 1024), 1024) <= 0.05
    rng = np.random.default_rng(0)
    L = rng.integers(8, 1024, 3000)
    bins = pack_blocks(L, 1024)
    assert sorted(i for b in bins for i in b) == list(range(3000)) and all(L[b].sum() <= 1024 for b in bins)
    share = 1 - L.sum() / (len(bins) * 1024)
    assert share <= 0.05, share
    assert len(bins) * 1024 < 0.6 * len(L) * 1024  # one per row would waste about half

# --- the cached demo run --------------------------------------------------------------------------------------------

def test_cached_demo_run():
    "The full demo run the tests compare: trained once with make demo's settings (configs/demo.yaml), then reused as it is."
    from chatmimic.train import cached_demo_run
    import yaml
    demo = yaml.safe_load((ROOT/'configs'/'demo.yaml').read_text())
    run = cached_demo_run('train_full')
    m = json.loads((run/'metrics.json').read_text())
    assert m['kind'] == 'full' and m['stop'] == 'done' and m['steps'] == demo['train_full']['max_steps'] and m['val_loss'] < m['val_loss_start']
    ps = yaml.safe_load((run/'params.yaml').read_text())
    assert {k: ps[k] for k in demo['train_full']} == demo['train_full'] and (ps['block_size'], ps['seed']) == (demo['block_size'], demo['seed'])
    t = (run/'metrics.json').stat().st_mtime_ns
    assert cached_demo_run('train_full') == run and (run/'metrics.json').stat().st_mtime_ns == t  # not trained again
