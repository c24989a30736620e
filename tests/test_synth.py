"Tests of the synthetic export generator: determinism, the large-size path, the command line."
import hashlib, os, stat, subprocess, sys, time
from pathlib import Path

from chatmimic.synth import make_truth, write_msgstore, reply_stats
from chatmimic.synth_exports import synth_export, expected, SYNTH_FORMATS
from chatmimic.cli import main

def digest(d) -> dict:
    "sha256 of every file under `d`, by relative path."
    d = Path(d)
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob('*')) if p.is_file()}

def test_same_seed_same_history_and_bytes(tmp_path):
    assert make_truth(300, 3) == make_truth(300, 3)
    assert make_truth(300, 3) != make_truth(300, 4)
    synth_export(tmp_path/'a', 300, 3, formats=SYNTH_FORMATS)
    synth_export(tmp_path/'b', 300, 3, formats=SYNTH_FORMATS)
    assert digest(tmp_path/'a') == digest(tmp_path/'b')

def test_same_bytes_across_processes(tmp_path):
    "No dependence on hash randomisation or time: two interpreters with different hash seeds write identical files."
    for name, hs in (('a', '1'), ('b', '2')):
        env = dict(os.environ, PYTHONHASHSEED=hs)
        argv = ['synth', str(tmp_path/name), '--messages', '300', '--seed', '5', '--formats', 'all', '-q']
        subprocess.run([sys.executable, '-c', f'from chatmimic.cli import main; main({argv!r})'], check=True, env=env)
    assert digest(tmp_path/'a') == digest(tmp_path/'b') != {}

def test_large_path_smoke(tmp_path):
    n = 20_000
    t0 = time.perf_counter(); truth = make_truth(n, 1); t1 = time.perf_counter()
    db = write_msgstore(truth, tmp_path/'msgstore.db'); t2 = time.perf_counter()
    print(f'\n{n} messages: build {t1 - t0:.2f} s, write {t2 - t1:.2f} s, {db.stat().st_size / 1e6:.1f} MB')
    assert sum(len(c.events) for c in truth.chats) == n
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    msgs = expected(truth, 'msgstore')
    assert [m.id for m in msgs] == list(range(1, len(msgs) + 1))
    assert {m.timestamp[:4] for m in msgs} >= {'2019', '2020', '2021', '2022', '2023', '2024'}
    assert reply_stats(truth)['copy_share'] > 0.8

def test_cli_writes_private_files_and_no_text(tmp_path, capsys):
    out = tmp_path/'demo'
    try: main(['synth', str(out), '--messages', '400', '--formats', 'all'])
    except SystemExit as e: assert e.code in (0, None)
    printed = capsys.readouterr().out
    files = [p for p in out.rglob('*') if p.is_file()]
    assert {p.name for p in files} >= {'msgstore.db', 'wa.db', 'result.json', 'message_1.json'}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    assert not [p for p in files if p.name.endswith('.tmp')]
    texts = {e.text for c in make_truth(400).chats for e in c.events if e.kind == 'text' and len(e.text) > 12}
    assert not [t for t in texts if t in printed]  # counts and paths only, never message text
    assert '400 messages' in printed

def test_cli_bad_arguments(tmp_path, capsys):
    for args in (['--formats', 'msgstore,fax'], ['--messages', '10']):
        try: main(['synth', str(tmp_path/'x'), *args]); assert False
        except SystemExit as e: assert e.code == 2
    assert not (tmp_path/'x').exists()
