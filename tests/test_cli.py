"The command line's contract: `chatmimic parse` on inputs no reader gets to (missing, empty, unknown), and every stage's bad input refused before torch loads."
import json, stat, subprocess, sys
from pathlib import Path
from conftest import run_chatmimic, assert_user_error

def test_help_lists_parse():
    r = run_chatmimic('--help')
    assert r.returncode == 0 and 'parse' in r.stdout

def test_missing_input(tmp_path):
    out = tmp_path/'out.jsonl'
    assert_user_error(run_chatmimic('parse', tmp_path/'nope.db', '--me', 'Paolo Neri', '-o', out), 'nope.db', out)

def test_empty_file(tmp_path):
    p, out = tmp_path/'msgstore.db', tmp_path/'out.jsonl'
    p.write_bytes(b'')
    line = assert_user_error(run_chatmimic('parse', p, '--me', 'Paolo Neri', '-o', out), p, out)
    assert 'empty' in line

def test_folder_without_export(tmp_path):
    d, out = tmp_path/'photos', tmp_path/'out.jsonl'
    d.mkdir(); (d/'cat.jpg').write_bytes(b'\xff\xd8\xff')
    line = assert_user_error(run_chatmimic('parse', d, '--me', 'Paolo Neri', '-o', out), d, out)
    assert 'no chat export' in line

def test_json_that_is_no_export(tmp_path):
    p, out = tmp_path/'config.json', tmp_path/'out.jsonl'
    p.write_text(json.dumps({'name': 'x', 'version': 3}))
    line = assert_user_error(run_chatmimic('parse', p, '--me', 'Paolo Neri', '-o', out), p, out)
    assert 'not a known chat export' in line

def test_truncated_json(tmp_path):
    p, out = tmp_path/'result.json', tmp_path/'out.jsonl'
    p.write_text('{"personal_information": {"user_id": 1}, "chats": {"list": [{"name": "A", "messages": [')
    line = assert_user_error(run_chatmimic('parse', p, '-o', out), p, out)
    assert 'truncated' in line

def test_sqlite_without_messages(tmp_path):
    import sqlite3
    p, out = tmp_path/'other.db', tmp_path/'out.jsonl'
    con = sqlite3.connect(p); con.execute('create table t(x)'); con.commit(); con.close()
    assert_user_error(run_chatmimic('parse', p, '--me', 'Paolo Neri', '-o', out), p, out)

def test_bad_timezone(tmp_path):
    p, out = tmp_path/'chat.txt', tmp_path/'out.jsonl'
    p.write_text('01/01/19, 10:12 - Paolo Neri: Presente!\n')
    r = run_chatmimic('parse', p, '--me', 'Paolo Neri', '--tz', 'Mars/Olympus', '-o', out)
    assert r.returncode == 2 and 'Mars/Olympus' in r.stderr and 'Traceback' not in r.stderr
    assert not out.exists()

def test_success_exits_zero_and_prints_no_text(tmp_path):
    "A successful parse exits 0, writes mode 0600, and prints counts, never message text."
    p, out = tmp_path/'WhatsApp Chat with Marco Rossi.txt', tmp_path/'out.jsonl'
    p.write_text('01/02/22, 10:12 - Marco Rossi: Calcetto stasera?\n01/02/22, 10:13 - Paolo Neri: Ci sono segretissimo\n')
    r = run_chatmimic('parse', p, '--me', 'Paolo Neri', '-o', out)
    assert r.returncode == 0, r.stderr
    assert 'segretissimo' not in r.stdout + r.stderr and 'Calcetto' not in r.stdout + r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r['from_me'] for r in rows] == [False, True] and rows[1]['text'] == 'Ci sono segretissimo'

def test_database_in_folder_with_uri_characters(tmp_path):
    "A real msgstore.db in a folder named with '#' and '?' is read, not taken for a database with no messages."
    d = tmp_path/'chats #1?'
    assert run_chatmimic('synth', d, '--messages', 200, '-q').returncode == 0
    out = d/'out.jsonl'
    r = run_chatmimic('parse', d/'msgstore.db', '--contacts', d/'wa.db', '--me', 'Paolo Neri', '-o', out, '-q')
    assert r.returncode == 0, r.stderr
    assert len(out.read_text().splitlines()) > 100

def test_json_nested_too_deeply(tmp_path):
    "JSON deeper than Python's parser goes (a crafted or damaged file): one sentence, not a RecursionError."
    p, out = tmp_path/'result.json', tmp_path/'out.jsonl'
    p.write_text('{"a":' * 100_000 + '1' + '}' * 100_000)
    assert 'nested too deeply' in assert_user_error(run_chatmimic('parse', p, '-o', out), p, out)

def test_skipped_records_are_counted_per_chat(tmp_path):
    "A record a reader cannot use (a time in the year 318857) is skipped and counted in its chat's row and the total; the rest is written."
    import sqlite3
    d, out = tmp_path/'export', tmp_path/'out.jsonl'
    assert run_chatmimic('synth', d, '--messages', 300, '-q').returncode == 0
    assert run_chatmimic('parse', d/'msgstore.db', '--contacts', d/'wa.db', '-o', tmp_path/'before.jsonl', '-q').returncode == 0
    con = sqlite3.connect(d/'msgstore.db')
    chat = con.execute('SELECT chat_row_id FROM message WHERE text_data IS NOT NULL AND chat_row_id > 0 ORDER BY _id LIMIT 1').fetchone()[0]
    con.execute('UPDATE message SET timestamp = 10000000000000000 WHERE _id IN (SELECT _id FROM message WHERE chat_row_id = ? LIMIT 3)', (chat,))
    con.commit(); con.close()
    r = run_chatmimic('parse', d/'msgstore.db', '--contacts', d/'wa.db', '-o', out)
    assert r.returncode == 0, r.stderr
    assert '3 records skipped as unusable' in r.stdout
    head, rows = r.stdout.splitlines()[0].split(), [l.split() for l in r.stdout.splitlines()[2:] if l and l[0] != ' ' and 'messages in' not in l]
    assert head[-1] == 'skipped'
    assert sorted(int(x[-1]) for x in rows if x and x[-1].isdigit())[-1] == 3  # one chat's row shows the three
    assert len(out.read_text().splitlines()) == len((tmp_path/'before.jsonl').read_text().splitlines()) - 3

# --- a command is checked before its stage's libraries load ------------------------------------------------------

HEAVY = ('torch', 'transformers', 'datasets', 'peft')
IN_PROCESS = f'''
import sys
from chatmimic.cli import main
try: code = main(sys.argv[1:])
except SystemExit as e: code = e.code
print(code, [m for m in {HEAVY!r} if m in sys.modules])
'''

def run_in_process(*args, cwd=None):
    "Run `chatmimic ARGS` in one Python process; (exit status, the heavy libraries it imported, stderr)."
    r = subprocess.run([sys.executable, '-c', IN_PROCESS, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)
    code, _, loaded = r.stdout.strip().splitlines()[-1].partition(' ')
    return int(code), loaded, r.stderr

def test_bad_input_is_refused_before_torch_loads(tmp_path):
    "Config errors and missing inputs of every stage that loads torch are one sentence from the light config module alone."
    ROOT = Path(__file__).resolve().parents[1]
    (tmp_path/'empty').mkdir(); (tmp_path/'empty.jsonl').write_text('')
    cases = [(('train-full', '--dataset', tmp_path/'empty', '-o', tmp_path/'o'), 'is not a dataset written by chatmimic prepare'),
             (('train-qlora', '-o', tmp_path/'o', 'lora_rnak=16'), 'did you mean lora_rank'),
             (('train-full', '-o', tmp_path/'o', '--learning-rate', '5'), 'learning_rate 5.0 must be between 0 and 1'),
             (('prepare', tmp_path/'empty.jsonl', '-o', tmp_path/'o'), 'the file is empty'),
             (('compare', tmp_path/'empty', '-o', tmp_path/'o'), 'is not a trainer run folder'),
             (('compare', '-o', tmp_path/'o', 'top_p=2'), 'top_p 2.0 must be in (0, 1]'),
             (('run', ROOT/'configs'/'demo.yaml', 'train_full.lerning_rate=1e-3', '--plan'), 'did you mean learning_rate')]
    for argv, says in cases:
        code, loaded, err = run_in_process(*argv)
        assert (code, loaded) == (2, '[]') and says in err and err.count('\n') == 1, (argv, code, loaded, err)
    assert not (tmp_path/'o').exists()
    code, loaded, err = run_in_process('run', ROOT/'configs'/'paper.yaml', '--plan', '--runs-dir', tmp_path/'runs')
    assert (code, loaded) == (0, '[]'), err  # every stage's config resolved and shown, none of their libraries loaded
