"""`chatmimic parse` on WhatsApp databases through the real command line: bad inputs are one sentence and exit status 2,
good ones (plain, encrypted with their key, or the study's JSON) parse. All data here is invented."""
import json, os, sqlite3, subprocess, sys, zlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / '.venv' / 'bin' / 'chatmimic'
CMD = [str(CLI)] if CLI.exists() else [sys.executable, '-c', 'from chatmimic.cli import main; main()']
ME = 'Paolo Neri'
SQLITE_MAGIC = b'SQLite format 3\x00'
HAVE_CRYPT = importlib.util.find_spec('wa_crypt_tools') is not None

SCHEMA = """
CREATE TABLE jid(_id INTEGER PRIMARY KEY, user TEXT, server TEXT, type INTEGER, raw_string TEXT);
CREATE TABLE chat(_id INTEGER PRIMARY KEY, jid_row_id INTEGER UNIQUE, subject TEXT);
CREATE TABLE message(_id INTEGER PRIMARY KEY, chat_row_id INTEGER, from_me INTEGER, key_id TEXT, sender_jid_row_id INTEGER,
  status INTEGER, timestamp INTEGER, message_type INTEGER, text_data TEXT);
CREATE TABLE message_quoted(message_row_id INTEGER PRIMARY KEY, chat_row_id INTEGER, from_me INTEGER, key_id TEXT, text_data TEXT);
CREATE TABLE message_edit_info(message_row_id INTEGER PRIMARY KEY, original_key_id TEXT, edited_timestamp INTEGER);
INSERT INTO jid VALUES (2,'393471112233','s.whatsapp.net',0,'393471112233@s.whatsapp.net'),
  (3,'393289876543','s.whatsapp.net',0,'393289876543@s.whatsapp.net'), (5,'393471112233-1546336800','g.us',1,'393471112233-1546336800@g.us');
INSERT INTO chat VALUES (1,5,'Calcetto del giovedì ⚽'), (2,2,NULL);
INSERT INTO message VALUES (1,-1,0,'-1',0,0,0,0,NULL), (2,1,1,'K02',0,6,1546336800000,7,'Calcetto del giovedì ⚽'),
  (3,1,0,'K03',3,0,1546337100000,0,'Ciao a tutti!'), (4,1,1,'K04',0,13,1546337300000,0,'Anch''io'),
  (5,2,0,'K05',0,0,1546340000000,0,'Ciao Paolo'), (6,2,1,'K06',0,13,1546340100000,0,'Ciao Giulia,
come stai?');
INSERT INTO message_quoted VALUES (4,1,0,'K03','Ciao a tutti!');
INSERT INTO message_edit_info VALUES (6,'K06',1546340200000);
"""

def make_msgstore(path, filler=0) -> Path:
    "A small modern msgstore.db; `filler` more text messages make it span many pages."
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.executemany('INSERT INTO message(chat_row_id,from_me,key_id,sender_jid_row_id,status,timestamp,message_type,text_data) '
                    'VALUES (2,0,?,0,0,?,0,?)', [(f'F{i}', 1546400000000 + i, 'testo di riempimento ' * 10) for i in range(filler)])
    con.commit(); con.close()
    return Path(path)

def make_wa(path) -> Path:
    "A small wa.db."
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE wa_contacts(_id INTEGER PRIMARY KEY, jid TEXT NOT NULL, is_whatsapp_user INTEGER NOT NULL, "
                      "display_name TEXT, wa_name TEXT); INSERT INTO wa_contacts(jid,is_whatsapp_user,display_name) "
                      "VALUES ('393471112233@s.whatsapp.net',1,'Giulia Conti');")
    con.commit(); con.close()
    return Path(path)

def parse(*args, out, env=None):
    "Run `chatmimic parse ARGS --me ME -o OUT`."
    return subprocess.run(CMD + ['parse', *map(str, args), '--me', ME, '-o', str(out)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)

def half(tmp):
    p = tmp / 'msgstore.db'
    raw = make_msgstore(tmp / 'full.db', filler=3000).read_bytes()
    p.write_bytes(raw[:len(raw) // 2])
    return p, []

def garbage(tmp):
    p = tmp / 'msgstore.db'; p.write_bytes(os.urandom(20000)); return p, []

def bad_header(tmp):
    p = tmp / 'msgstore.db'; p.write_bytes(SQLITE_MAGIC + os.urandom(20000)); return p, []

def empty(tmp):
    p = tmp / 'msgstore.db'; p.write_bytes(b''); return p, []

def crypt(ext):
    def f(tmp):
        p = tmp / f'msgstore.db.{ext}'; p.write_bytes(os.urandom(5000)); return p, []
    return f

def wrong_key(tmp):
    p = tmp / 'msgstore.db.crypt15'; p.write_bytes(os.urandom(5000)); return p, ['--key', 'ab' * 32]

def bad_key(tmp):
    p = tmp / 'msgstore.db.crypt15'; p.write_bytes(os.urandom(5000)); return p, ['--key', 'not-a-key']

def wa_input(tmp):
    return make_wa(tmp / 'wa.db'), []

def contacts(kind):
    def f(tmp):
        bad = tmp / 'wa.db'
        if kind == 'garbage': bad.write_bytes(os.urandom(5000))
        elif kind == 'msgstore': make_msgstore(bad)
        return (make_msgstore(tmp / 'msgstore.db'), ['--contacts', bad]), bad
    return f

CASES = {'truncated': half, 'garbage': garbage, 'garbage-after-header': bad_header, 'empty': empty,
         'crypt12': crypt('crypt12'), 'crypt14': crypt('crypt14'), 'crypt15': crypt('crypt15'), 'wrong-key': wrong_key,
         'unreadable-key': bad_key, 'wa.db-as-input': wa_input, 'contacts-garbage': contacts('garbage'),
         'contacts-msgstore': contacts('msgstore'), 'contacts-missing': contacts('missing')}

@pytest.mark.parametrize('case', CASES)
def test_bad_input(case, tmp_path):
    made = CASES[case](tmp_path)
    if isinstance(made[1], Path): (path, extra), named = made
    else: (path, extra), named = made, made[0]
    out = tmp_path / 'out' / 'parsed.jsonl'
    r = parse(path, *extra, out=out)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(named) in lines[0] and lines[0].startswith('chatmimic: '), lines[0]
    assert 'Traceback' not in r.stderr and r.stdout == ''
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))
    if case == 'wrong-key': assert ('could not be decrypted' if HAVE_CRYPT else 'pip install wa-crypt-tools') in lines[0]
    if case.startswith('crypt'): assert f'is an encrypted WhatsApp backup (.{case})' in lines[0] and '--key' in lines[0]
    if 'ab' * 32 in ' '.join(map(str, extra)): assert 'ab' * 32 not in r.stderr  # the key is never echoed

def read_out(path): return [json.loads(l) for l in Path(path).read_text(encoding='utf-8').splitlines()]

def test_parses(tmp_path):
    db, wa = make_msgstore(tmp_path / 'msgstore.db'), make_wa(tmp_path / 'wa.db')
    r = parse(db, '--contacts', wa, out=tmp_path / 'out.jsonl')
    assert r.returncode == 0, r.stderr
    msgs = read_out(tmp_path / 'out.jsonl')
    assert (tmp_path / 'out.jsonl').stat().st_mode & 0o777 == 0o600
    assert [(m['sender'], m['kind'], m['edited'], m['reply_to']) for m in msgs] == [
        (None, 'system', False, None), ('+393289876543', 'text', False, None), (ME, 'text', False, 2),
        ('Giulia Conti', 'text', False, None), (ME, 'text', True, None)]

def test_paper_json_round_trip(tmp_path):
    db = make_msgstore(tmp_path / 'msgstore.db')
    assert parse(db, out=tmp_path / 'direct.jsonl').returncode == 0
    r = parse(db, '--paper-json', out=tmp_path / 'paper.json')
    assert r.returncode == 0, r.stderr
    paper = json.loads((tmp_path / 'paper.json').read_text(encoding='utf-8'))
    assert set(paper) == {'393471112233-1546336800@g.us', '393471112233@s.whatsapp.net'}
    assert parse(tmp_path / 'paper.json', out=tmp_path / 'back.jsonl').returncode == 0
    direct = read_out(tmp_path / 'direct.jsonl')
    assert read_out(tmp_path / 'back.jsonl') == [dict(m, edited=False) for m in direct]  # the JSON carries no edits

@pytest.mark.skipif(not HAVE_CRYPT, reason='wa-crypt-tools is not installed')
@pytest.mark.parametrize('key_form', ['hex', 'file'])
def test_encrypted_round_trip(key_form, tmp_path):
    from wa_crypt_tools.lib.db.db15 import Database15
    from wa_crypt_tools.lib.key.key15 import Key15
    from wa_crypt_tools.lib.props import Props
    db = make_msgstore(tmp_path / 'msgstore.db')
    root = os.urandom(32)
    key = Key15(keyarray=root)
    (tmp_path / 'msgstore.db.crypt15').write_bytes(Database15(key=key).encrypt(key, Props(), zlib.compress(db.read_bytes(), 1)))
    if key_form == 'file': key.file_dump(tmp_path / 'encrypted_backup.key')
    arg = root.hex() if key_form == 'hex' else tmp_path / 'encrypted_backup.key'
    scratch = tmp_path / 'tmpdir'; scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    r = parse(tmp_path / 'msgstore.db.crypt15', '--key', arg, out=tmp_path / 'dec.jsonl', env=env)
    assert r.returncode == 0, r.stderr
    assert parse(db, out=tmp_path / 'plain.jsonl').returncode == 0
    assert read_out(tmp_path / 'dec.jsonl') == read_out(tmp_path / 'plain.jsonl')
    assert not any(scratch.iterdir())  # the decrypted temporary copy is gone
    r = parse(tmp_path / 'msgstore.db.crypt15', '--key', os.urandom(32).hex(), out=tmp_path / 'bad.jsonl', env=env)
    assert r.returncode == 2 and 'could not be decrypted' in r.stderr and len(r.stderr.strip().splitlines()) == 1
