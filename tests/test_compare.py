"`chatmimic compare` and `chatmimic chat` as a user runs them, on a tiny run folder laid out by the trainers."
import json, subprocess
from pathlib import Path
import pytest
from conftest import CHATMIMIC, run_chatmimic, assert_user_error

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    from chatmimic.compare import toy_run
    return toy_run(tmp_path_factory.mktemp('toy'))

def test_compare_cli(toy, tmp_path):
    out = tmp_path/'cmp'
    r = run_chatmimic('compare', toy, '-o', out, '--n-examples', '8', '--n-generate', '2', '--max-new-tokens', '8', '--n-boot', '200')
    assert r.returncode == 0, r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert set(m['models']) == {'run', 'run (base)'} and m['n_examples'] == 8
    d = m['differences']['run minus base']
    assert d['loss']['hi'] < 0 and d['bpb']['hi'] < 0  # the trained model beats its random initialisation, intervals included
    for f in ('report.html', 'report.md', 'generations.jsonl'):
        assert (out/f).stat().st_mode & 0o777 == 0o600, f
    assert 'run minus base' in r.stdout and 'bpb' in r.stdout
    gens = [json.loads(l) for l in (out/'generations.jsonl').read_text().splitlines()]
    texts = [t for g in gens for t in [g['real'], *(x['text'] for x in g['replies'].values())]]
    lines = {l.split(':', 1)[-1].strip() for t in texts for l in t.splitlines()}
    leaked = [l for l in lines if len(l) >= 6 and (l in r.stdout or l in r.stderr)]
    assert not leaked, leaked  # the terminal gets numbers, never message text
    html = (out/'report.html').read_text()
    assert '&lt;Risposta a:' in html and '<Risposta' not in html and 'data:image/png;base64,' in html

def test_compare_bad_run(tmp_path):
    (tmp_path/'notarun').mkdir()
    assert_user_error(run_chatmimic('compare', tmp_path/'notarun', '-o', tmp_path/'out'), tmp_path/'notarun', tmp_path/'out')

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
