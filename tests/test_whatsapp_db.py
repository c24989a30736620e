"""`chatmimic parse` on WhatsApp databases through the real command line: bad inputs are one sentence and exit status 2,
good ones (plain, encrypted with their key, or the study's JSON) parse. All data here is invented."""
import json, os, shutil, sqlite3, subprocess, sys, zlib
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

# ---- values checked at the reader, WAL files, text that is not UTF-8 (issue 14) ----------------------------------

SECRET = 'Ci vediamo al solito posto alle nove'

def make_with(path, sql:str) -> Path:
    "The small msgstore.db with `sql` run on it."
    db = make_msgstore(path)
    con = sqlite3.connect(db); con.executescript(sql); con.commit(); con.close()
    return db

def row(ts='1546340500000', text=f"'{SECRET}'", from_me='0', key='X') -> str:
    "SQL for one more message of the 1:1 chat."
    return (f"INSERT INTO message(chat_row_id,from_me,key_id,sender_jid_row_id,status,timestamp,message_type,text_data) "
            f"VALUES (2,{from_me},'{key}',0,0,{ts},0,{text});")

def test_text_that_is_not_utf8_is_never_printed(tmp_path):
    bad = f"CAST(X'{(SECRET + ' ').encode().hex()}ff' AS TEXT)"  # the message's own text, then a byte that is not UTF-8
    db = make_with(tmp_path / 'msgstore.db', row(text=bad))
    r = parse(db, out=tmp_path / 'out.jsonl')
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert len(read_out(tmp_path / 'out.jsonl')) == 5  # the damaged row skipped, the five others read
    con = sqlite3.connect(db)  # now every row is damaged: one sentence, still without the text
    con.execute("UPDATE message SET text_data = CAST(CAST(COALESCE(text_data, 'x') AS BLOB) || X'ff' AS TEXT)"); con.commit(); con.close()
    r = parse(db, out=tmp_path / 'none.jsonl')
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and SECRET not in r.stderr, r.stderr
    assert 'none of its 6 messages can be used (6 with text that is not UTF-8)' in r.stderr
    assert not (tmp_path / 'none.jsonl').exists()

def test_values_out_of_range_or_of_the_wrong_type_are_skipped(tmp_path):
    bad = [row(ts='NULL', key='A'), row(ts=str(10**16), key='B'), row(ts='-5', key='C'), row(ts="'ieri'", key='D'),
           row(from_me="'sì'", key='E'), row(text="X'00ff'", key='F'), row(ts='1230000000000', key='G')]  # G: December 2008
    db = make_with(tmp_path / 'msgstore.db', '\n'.join(bad))
    r = parse(db, out=tmp_path / 'out.jsonl')
    assert r.returncode == 0, r.stderr
    msgs = read_out(tmp_path / 'out.jsonl')
    assert len(msgs) == 5 and all('2019-01-01' <= m['timestamp'] < '2019-01-02' for m in msgs)  # none from 1970 or the year 318857
    assert all(type(m['text']) is str or m['text'] is None for m in msgs) and SECRET not in {m['text'] for m in msgs}

def test_a_database_of_unusable_rows_is_one_sentence(tmp_path):
    db = make_with(tmp_path / 'msgstore.db', "UPDATE message SET timestamp = NULL;")
    r = parse(db, out=tmp_path / 'out.jsonl')
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert 'msgstore.db: none of its 5 messages can be used (5 with a time out of range)' in r.stderr

def wal_copy(folder:Path) -> Path:
    "A WAL-mode msgstore.db whose last message is still only in its -wal file, as copied off a phone with WhatsApp open."
    db = make_msgstore(folder / 'phone.db')
    con = sqlite3.connect(db)
    con.execute('PRAGMA journal_mode=WAL'); con.execute('PRAGMA wal_autocheckpoint=0')
    con.execute(row(text="'dal WAL'"))
    con.commit()
    live = folder / 'copy'; live.mkdir()
    for s in ('', '-wal'): (live / f'msgstore.db{s}').write_bytes(Path(f'{db}{s}').read_bytes())
    con.close()
    return live / 'msgstore.db'

READ_IT = """
import sys
from chatmimic.whatsapp_db import read_msgstore
from chatmimic.parse import ParseOptions
msgs = list(read_msgstore(sys.argv[1], ParseOptions(me='Paolo Neri')))
print(len(msgs), sum(m.text == 'dal WAL' for m in msgs))
"""

def test_wal_database_is_read_whole_and_nothing_is_written_beside_it(tmp_path):
    db = wal_copy(tmp_path)
    before = sorted(p.name for p in db.parent.iterdir())
    r = subprocess.run([sys.executable, '-c', READ_IT, str(db)], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ['6', '1'], r.stderr  # the message in the -wal file is read
    assert sorted(p.name for p in db.parent.iterdir()) == before == ['msgstore.db', 'msgstore.db-wal']  # no -shm appeared

def run_read_only(folder:Path, cmd:list) -> subprocess.CompletedProcess:
    "Run `cmd` with `folder` read-only: a read-only bind mount as root (root ignores modes), else mode 0555."
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try: return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        finally: folder.chmod(0o755)
    if not shutil.which('unshare'): pytest.skip('root without unshare: no way to make a folder read-only here')
    r = subprocess.run(['unshare', '-m', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder), *cmd],
                       capture_output=True, text=True, timeout=120)
    if r.returncode and 'mount' in r.stderr: pytest.skip(f'no read-only mount here: {r.stderr.strip()}')
    return r

@pytest.mark.parametrize('wal', [False, True])
def test_read_only_folder(tmp_path, wal):
    "A database in a folder nobody may write (a mounted phone backup): read, not 'damaged'."
    if wal: db = wal_copy(tmp_path)
    else:
        (tmp_path / 'ro').mkdir()
        db = make_msgstore(tmp_path / 'ro' / 'msgstore.db')
        con = sqlite3.connect(db); con.execute('PRAGMA journal_mode=WAL'); con.close()  # WhatsApp's mode, no -wal left
    r = run_read_only(db.parent, [sys.executable, '-c', READ_IT, str(db)])
    assert r.stdout.split() == (['6', '1'] if wal else ['5', '0']), r.stderr

def test_wal_database_through_the_command(tmp_path):
    "Format detection and the reader together write nothing beside a WAL database (no -shm), whatever the folder allows."
    db = wal_copy(tmp_path)
    before = sorted(p.name for p in db.parent.iterdir())
    r = parse(db, out=tmp_path / 'out.jsonl')
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in db.parent.iterdir()) == before

def write_json(path, chats) -> Path:
    path.write_text(json.dumps(chats), encoding='utf-8'); return path

def ev(t, **kv):
    "One message as WhatsApp-Chat-Exporter writes it, `t` seconds after 2019-01-01 10:05 UTC."
    return {'from_me': False, 'timestamp': 1546337100 + t, 'time': '11:05', 'media': False, 'meta': False, 'key_id': f'K{t}',
            'data': None, 'sender': None, 'safe': False, 'mime': None, 'reply': None, 'quoted_data': None, 'caption': None,
            'thumb': None, 'sticker': False, **kv}

def test_exporter_media_without_its_file_is_media(tmp_path):
    "An image or video the exporter could not copy: media false, a media message_type, the caption in data: media with its caption."
    p = write_json(tmp_path / 'chats.json', {'393289876543@s.whatsapp.net': {'name': 'Marco B.', 'messages': {
        '1': ev(1, message_type=1, data='Il campo <br>nuovo', caption='Il campo\nnuovo'), '2': ev(2, message_type=3, data='Che gol!'),
        '3': ev(3, message_type=2), '4': ev(4, message_type=0, data='Ciao <br>a tutti')}}})
    r = parse(p, out=tmp_path / 'out.jsonl')
    assert r.returncode == 0, r.stderr
    assert [(m['kind'], m['text']) for m in read_out(tmp_path / 'out.jsonl')] == [
        ('media', 'Il campo\nnuovo'), ('media', 'Che gol!'), ('media', None), ('text', 'Ciao\na tutti')]

def test_exporter_values_of_the_wrong_type_are_skipped(tmp_path):
    msgs = {'1': ev(1, data='Ciao'), '2': ev(2, data=42), '3': ev(3, data='x', sender=['Marco']), '4': ev(4, data='x', from_me='no'),
            '5': ev(0, data='x', timestamp=float('nan')), '6': ev(0, data='x', timestamp=10**20), '7': ev(0, data='x', timestamp=-29719 * 31557600)}
    p = write_json(tmp_path / 'chats.json', {'393289876543@s.whatsapp.net': {'name': 'Marco B.', 'messages': msgs}})
    r = parse(p, out=tmp_path / 'out.jsonl')
    assert r.returncode == 0, r.stderr
    assert [(m['text'], m['timestamp']) for m in read_out(tmp_path / 'out.jsonl')] == [('Ciao', '2019-01-01T10:05:01Z')]
    del msgs['1']
    write_json(p, {'393289876543@s.whatsapp.net': {'name': 'Marco B.', 'messages': msgs}})
    r = parse(p, out=tmp_path / 'none.jsonl')
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert 'chats.json: none of its 6 messages can be used (3 with a time out of range, ' in r.stderr
