"`chatmimic compare` and `chatmimic chat` as a user runs them, on tiny run folders written by the trainers; and the trainers' demo runs against their bases."
import json, subprocess
import pytest
from conftest import CHATMIMIC, run_chatmimic, assert_user_error

@pytest.fixture(scope='module')
def toys():
    "Two tiny runs made by the pipeline's stages: GPT-2 fully fine-tuned, a random Gemma 3 with QLoRA; two tokenizers, one split (made once for this code, under the cache)."
    from chatmimic.generate import toy_runs
    return toy_runs()

@pytest.fixture(scope='module')
def toy(toys): return toys[0]

@pytest.fixture(scope='module')
def toyq(toys): return toys[1]

def test_compare_cli(toy, toyq, tmp_path):
    "Flags generated from the config's fields, key=value anywhere, -o/--out; two runs with two tokenizers on the same replies."
    out = tmp_path/'cmp'
    r = run_chatmimic('compare', toy, 'n_boot=200', toyq, '--out', out, '--n-examples', '8', '--n-generate', '2', 'max_new_tokens=8')
    assert r.returncode == 0, r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert set(m['models']) == {toy.name, f'{toy.name} (base)', toyq.name, f'{toyq.name} (base)'} and m['n_examples'] == 8
    assert m['replies']['scored'] == 8 and m['replies']['shared'] >= 8 and {x['examples'] for x in m['models'].values()} == {8}
    assert m['config']['n_boot'] == 200 and {x['max_new_tokens'] for x in m['models'].values()} == {8}
    assert set(m['split']) == {toy.name, toyq.name} and all(s['test'] is not None for s in m['split'].values())
    for run in (toy, toyq):
        d = m['differences'][f'{run.name} minus base']
        assert d['loss']['hi'] < 0 and d['bpb']['hi'] < 0  # the trained model beats its random initialisation, intervals included
    assert set(m['differences'][f'{toy.name} minus {toyq.name}']) == {'bpb', 'content_bpb'}  # between tokenizers: bytes only
    for f in ('report.html', 'report.md', 'generations.jsonl', 'metrics.json', 'blind.html', 'blind.json', 'authorship.png'):
        assert (out/f).stat().st_mode & 0o777 == 0o600, f
    assert 'minus base' in r.stdout and 'content bpb' in r.stdout and 'owner-likeness' in r.stdout
    a = m['authorship']  # the audit (issue 15), run by compare itself
    assert {'value', 'lo', 'hi'} <= set(a['auc']) and a['auc']['lo'] <= a['auc']['value'] <= a['auc']['hi'] and a['held_out_messages'] > 0
    for e in [*m['models'].values(), m['real_style']]: assert {'value', 'lo', 'hi', 'k', 'n'} <= set(e['owner_likeness']) and e['owner_likeness']['n'] == 2
    assert m['extraction']['values'] == 0 and m['canaries']['planted'] == 0  # the toy export holds no number or e-mail; its prepare planted no canary
    assert all(e['extraction']['values'] == 0 and 'mean' in e['exposure'] for e in m['models'].values())
    assert m['blind'] == dict(page=m['blind']['page'], questions=2, models=[toy.name, toyq.name])
    gens = [json.loads(l) for l in (out/'generations.jsonl').read_text().splitlines()]
    texts = [t for g in gens for t in [g['real'], *(x['text'] for x in g['replies'].values())]]
    lines = {l.split(':', 1)[-1].strip() for t in texts for l in t.splitlines()}
    leaked = [l for l in lines if len(l) >= 6 and (l in r.stdout or l in r.stderr)]
    assert not leaked, leaked  # the terminal gets numbers, never message text
    html = (out/'report.html').read_text()
    assert '&lt;Risposta a:' in html and '<Risposta' not in html and 'data:image/png;base64,' in html and 'leak rate' in html
    assert 'Does it sound like you?' in html and 'nothing to extract' in html and 'none were planted' in html  # said, not hidden

def test_compare_caps_generation_at_the_real_replies(toy, tmp_path):
    "max_new_tokens 0 (the default): the cap is the 95th percentile of the scored replies' lengths after the speaker head."
    import numpy as np
    from chatmimic.generate import run_info, dataset_path, owner_of
    from chatmimic.train import load_prepared
    from chatmimic.prepare import Template
    r = run_chatmimic('compare', toy, '-o', tmp_path/'cmp', '--n-generate', '1', '--n-boot', '10', '--no-base', '-q')
    assert r.returncode == 0 and r.stdout == '', r.stderr
    m = json.loads((tmp_path/'cmp'/'metrics.json').read_text())
    dsd, stats, tok = load_prepared(dataset_path(toy, run_info(toy)))
    head = len(tok(Template(**stats['template']).head.format(sender=owner_of(stats)), add_special_tokens=False)['input_ids'])
    lengths = [len(x['input_ids']) - x['prompt_len'] - head for x in dsd['test']]
    assert m['models'][toy.name]['max_new_tokens'] == int(np.ceil(np.percentile(lengths, 95))) and m['n_examples'] == len(lengths)

def test_compare_refuses_runs_that_share_no_reply(toy, tmp_path):
    "Datasets prepared from different messages share no test reply: one sentence, exit 2, nothing written."
    from chatmimic.generate import toy_runs
    other = toy_runs(tmp_path/'other', ['full'], steps=2, seed=1)[0]  # another synthetic export, other replies
    out = tmp_path/'cmp'
    line = assert_user_error(run_chatmimic('compare', toy, other, '-o', out), toy, out)
    assert 'share no reply' in line

def test_compare_bad_run(tmp_path):
    (tmp_path/'notarun').mkdir()
    assert_user_error(run_chatmimic('compare', tmp_path/'notarun', '-o', tmp_path/'out'), tmp_path/'notarun', tmp_path/'out')

def test_compare_bad_value(toy, tmp_path):
    r = run_chatmimic('compare', toy, '-o', tmp_path/'out', 'top_p=2')
    assert r.returncode == 2 and 'top_p 2.0 must be in (0, 1]' in r.stderr and r.stderr.count('\n') == 1, r.stderr

def test_demo_runs_beat_their_bases(tmp_path):
    "The trainers' demo runs (the GPT-2 stand-in, Gemma 3 270M with QLoRA: the real model, trained once and cached) each beat their base on the test replies both datasets hold (one reply generated: the toy runs above and the compare notebook generate more)."
    from chatmimic.train import cached_demo_run
    from chatmimic.compare import CompareConfig, compare
    runs = [str(cached_demo_run('train_full')), str(cached_demo_run('train_qlora', stop_examples=0))]  # the QLoRA run's adapter is all this reads: no stop-rate check
    res = compare(CompareConfig(runs=runs, out=str(tmp_path/'cmp'), n_examples=8, n_generate=1, n_boot=200), log=lambda *a: None)
    assert res['replies']['scored'] == 8 and {m['examples'] for m in res['models'].values()} == {8} and res['n_generate'] == 1
    for k, d in res['differences'].items():
        if k.endswith('minus base'): assert d['loss']['hi'] < 0 and d['bpb']['hi'] < 0, (k, d)

def chat(run, text, *args):
    return subprocess.run([str(CHATMIMIC), 'chat', str(run), *args], input=text, capture_output=True, text=True, timeout=300)

def test_chat_cli(toy):
    r = chat(toy, 'Ciao! Ci sei giovedì?\n\nE tu?\n/quit\nnever read\n', '--friend', 'Marco Bianchi', '--chat', 'Calcetto', '--max-new-tokens', '12')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('Paolo Neri:')  # the clone answers as the owner
    assert r.stdout.count('Paolo Neri:') >= 2  # a reply to each of the two messages
    assert 'Traceback' not in r.stderr

def test_chat_eof(toy):
    r = chat(toy, 'ciao', '--max-new-tokens', '4', '--me', 'Paolo Neri')
    assert r.returncode == 0 and r.stdout.startswith('Paolo Neri:'), r.stderr

def test_chat_bad(tmp_path, toy):
    assert_user_error(chat(tmp_path/'nowhere', ''), tmp_path/'nowhere')
    assert_user_error(chat(toy, '', '--max-new-tokens', '100000'), '--max-new-tokens')
