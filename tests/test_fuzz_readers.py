"""Property-based tests (hypothesis) of every reader through `chatmimic parse`: mutated and truncated versions of the
synthetic exports always end in exit 0 with a well-formed file, or in exit 2 with exactly one line on stderr; never a
traceback, never a partial or leftover file in the output folder, never an input changed (or a file added beside it),
never message text printed. The command runs in this process (`chatmimic.cli.main`, stdout and stderr captured: the
same code path as the console script, at a fraction of the start-up cost); `test_same_in_a_real_process` runs a few
cases through the installed command. `test_zz_cases_counted` prints how many bad-input cases ran (the README's privacy
section cites it). Examples are derandomized: the same cases run on every machine."""
import contextlib, hashlib, io, json, os, re, shutil, sqlite3, stat, tempfile, time, zipfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chatmimic import synth, synth_exports
from chatmimic.cli import main
from chatmimic.parse import FIELDS, KINDS
from conftest import run_chatmimic

OWNER = 'Paolo Neri'
SCALE = float(os.environ.get('CHATMIMIC_FUZZ_SCALE', '1'))  # e.g. 20 for a long hunt; with CHATMIMIC_FUZZ_RANDOM=1, new cases each run
EXAMPLES = {f: max(1, round(n * SCALE)) for f, n in
            {'msgstore': 140, 'legacy': 90, 'whatsapp-json': 140, 'txt': 160, 'zip': 100, 'telegram': 130, 'messenger': 140}.items()}
CASES = Counter()  # bad-input cases run, by format
FUZZ = settings(max_examples=1, deadline=None, database=None, derandomize=not os.environ.get('CHATMIMIC_FUZZ_RANDOM'), print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
fuzz = lambda fmt: settings(FUZZ, max_examples=EXAMPLES[fmt])

# ---- the synthetic exports, written once ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    "{format: (folder, the input file inside it)} for every format, and the message texts that must never be printed."
    d = tmp_path_factory.mktemp('exports')
    truth = synth.make_truth(150, seed=7, owner=OWNER)
    group = next(k for k, c in enumerate(truth.chats) if c.is_group)
    one = next(k for k, c in enumerate(truth.chats) if not c.is_group)
    base = {}
    base['msgstore'] = synth.write_msgstore(truth, d/'msgstore'/'msgstore.db')
    base['legacy'] = synth.write_msgstore(truth, d/'legacy'/'msgstore.db', 'legacy')
    (d/'json').mkdir()
    base['whatsapp-json'] = d/'json'/'paper.json'
    from chatmimic.whatsapp_db import to_paper_json
    base['whatsapp-json'].write_text(json.dumps(to_paper_json(synth_exports.expected(truth, 'msgstore', me=OWNER), 'messages')))
    base['txt'] = synth_exports.write_whatsapp_txt(truth, group, d/'txt', **{k: v for k, v in synth_exports.TXT_OPTIONS.items()})
    base['zip'] = synth_exports.write_whatsapp_zip(truth, one, d/'zip', tz='Europe/Rome')
    base['telegram'] = synth_exports.write_telegram(truth, d/'telegram'/'result.json')
    base['messenger'] = synth_exports.write_messenger(truth, group, d/'messenger', per_file=25)[0]
    texts = {e.text for c in truth.chats for e in c.events if e.kind in ('text', 'media') and e.text and len(e.text) >= 20} - {c.title for c in truth.chats}
    return {f: (p.parent, p) for f, p in base.items()}, texts

# ---- running the command and checking what it left --------------------------------------------------------------

def snapshot(folder:Path) -> dict:
    "Every file under `folder` (relative path -> sha256): a changed, removed or added file shows."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}

def parse(inp:Path, out:Path) -> tuple[int, str, str]:
    "Run `chatmimic parse INP --me OWNER -o OUT` in this process: (exit status, stdout, stderr)."
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        try: rc = main(['parse', str(inp), '--me', OWNER, '-o', str(out)])
        except SystemExit as e: rc = e.code
    return rc or 0, so.getvalue(), se.getvalue()

ISO = re.compile(r'(\d{4})-\d\d-\d\dT\d\d:\d\d:\d\dZ')

def check_output(out:Path):
    "A successful run's file: private, complete JSON Lines, every field of its type, times plausible, ids 1..N."
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = [json.loads(l) for l in out.read_text(encoding='utf-8').split('\n')[:-1]]  # JSON Lines end lines with \n only
    assert rows, 'exit 0 with no messages'
    last_year = time.gmtime(time.time() + 86400).tm_year
    for n, r in enumerate(rows, 1):
        assert tuple(r) == FIELDS, r.keys()
        assert r['id'] == n and type(r['is_group']) is bool and type(r['from_me']) is bool and type(r['edited']) is bool
        assert type(r['chat_id']) is str and r['chat_id'] and type(r['chat']) is str and r['chat'], (r['chat_id'], r['chat'])
        assert r['kind'] in KINDS and (r['text'] is None or type(r['text']) is str)
        assert r['sender'] is None if r['kind'] == 'system' else type(r['sender']) is str and r['sender'], r['sender']
        assert r['reply_to'] is None or (type(r['reply_to']) is int and 1 <= r['reply_to'] <= len(rows))
        m = ISO.fullmatch(r['timestamp'])
        assert m and 2004 <= int(m[1]) <= last_year, r['timestamp']

def run_case(fmt:str, folder:Path, inp:Path, texts:set, run=parse) -> int:
    "Parse the (mutated) input `inp` in `folder` with `run` and check every property; counts the case; returns the exit status."
    CASES[fmt] += run is parse
    before = snapshot(folder)
    with tempfile.TemporaryDirectory() as w:
        out = Path(w)/'out'/'messages.jsonl'
        rc, so, se = run(inp, out)
        assert rc in (0, 2), (rc, se[-2000:])
        if rc == 2:
            lines = se.splitlines()
            assert len(lines) == 1 and lines[0].startswith('chatmimic: ') and 'Traceback' not in se, se[-2000:]
            assert not out.parent.exists() or not any(out.parent.iterdir()), list(out.parent.iterdir())  # nothing partial
        else:
            assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left beside it
            check_output(out)
        printed = so + se
        assert not [t for t in texts if t in printed], 'message text printed'
    assert snapshot(folder) == before  # the input is unchanged, and nothing was created beside it
    return rc

def workcopy(src_folder:Path) -> tuple[Path, tempfile.TemporaryDirectory]:
    "A private copy of an export's folder to mutate."
    td = tempfile.TemporaryDirectory()
    dst = Path(td.name)/src_folder.name
    shutil.copytree(src_folder, dst)
    return dst, td

# ---- mutations --------------------------------------------------------------------------------------------------

TRICKY_BYTES = [b'', b'\x00', b'\xff', b'\xfe\xff', b'\xef\xbb\xbf', b'\n', b'\r', b'\r\n', '\u2028'.encode(), '\u200e'.encode(),
                b'"', b'{', b']', b',', b'\\', b'\\ud83d', b'NaN', b'-', b'9' * 30, b'PK\x03\x04']

def mutate_bytes(draw, raw:bytes) -> bytes:
    "One to three byte-level changes: truncate, overwrite, insert, delete or duplicate a stretch."
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(['truncate', 'overwrite', 'insert', 'delete', 'duplicate']))
        i = draw(st.integers(0, len(raw)))
        if op == 'truncate': raw = raw[:i]
        elif op == 'overwrite': b = draw(st.binary(min_size=1, max_size=8)); raw = raw[:i] + b + raw[i + len(b):]
        elif op == 'insert': raw = raw[:i] + draw(st.one_of(st.sampled_from(TRICKY_BYTES), st.binary(max_size=16))) + raw[i:]
        elif op == 'delete': raw = raw[:i] + raw[i + draw(st.integers(1, 64)):]
        else: j = draw(st.integers(0, len(raw))); raw = raw[:i] + raw[min(i, j):max(i, j)] + raw[i:]
    return raw

WEIRD = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                  st.sampled_from([0, -1, 1, 10**10, 10**13, 10**16, 2**63, 10**400, 1e308, -29719 * 31557600]),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                  st.sampled_from(['', 'NaN', '\n', '\ud83d', 'x' * 3000, '1e400', '2019-01-01T10:00:00', OWNER]),
                  st.lists(st.integers(0, 9), max_size=3), st.dictionaries(st.sampled_from(['text', 'id', 'name']), st.integers(), max_size=2))

def paths(o, at=()):
    "Every path (a tuple of keys and indices) to a value inside loaded JSON `o`."
    yield at
    if isinstance(o, dict): items = o.items()
    elif isinstance(o, list): items = enumerate(o)
    else: return
    for k, v in items: yield from paths(v, at + (k,))

KEY_FIELDS = {'timestamp', 'timestamp_ms', 'date_unixtime', 'id', 'from', 'from_id', 'sender', 'sender_name', 'content', 'text',
              'text_entities', 'data', 'caption', 'name', 'title', 'type', 'from_me', 'media', 'meta', 'sticker', 'key_id', 'reply',
              'message_type', 'participants', 'thread_path', 'reply_to_message_id', 'is_group', 'is_unsent', 'messages', 'user_id'}

def mutate_json(draw, o):
    "One to four changes to loaded JSON, mostly to the fields readers use: a value replaced by one of another type or range, a key or item removed."
    for _ in range(draw(st.integers(1, 4))):
        ps = [p for p in paths(o) if p]
        if not ps: break
        keyed = [p for p in ps if p[-1] in KEY_FIELDS]
        p = draw(st.sampled_from(ps if not keyed or draw(st.integers(0, 3)) == 3 else keyed))  # hypothesis favours 0: the key fields
        parent = o
        for k in p[:-1]: parent = parent[k]
        if draw(st.integers(0, 4)) == 0: del parent[p[-1]]
        else: parent[p[-1]] = draw(WEIRD)
    return o

SQL_WEIRD = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.sampled_from([0, -1, 1, 10**16, 2**63 - 1, 1546337100]),
                      st.floats(allow_nan=False), st.text(max_size=10), st.binary(max_size=8),
                      st.sampled_from(['', '\n', 'x' * 2000, b'\xff\xfeCiao', 'bad-utf8']))

KEY_COLUMNS = {  # the columns the readers use, most telling first (hypothesis favours the first of a list): mutated more often
    'message': ['timestamp', 'text_data', 'from_me', 'chat_row_id', 'sender_jid_row_id', 'message_type', 'status', 'key_id', '_id'],
    'messages': ['timestamp', 'data', 'key_remote_jid', 'key_from_me', 'media_caption', 'remote_resource', 'media_wa_type', 'status', '_id'],
    'jid': ['raw_string', 'user', 'server'], 'chat': ['subject', 'jid_row_id'], 'chat_list': ['key_remote_jid', 'subject'],
    'props': ['value'], 'message_media': ['media_caption', 'message_row_id'], 'message_quoted': ['key_id', 'message_row_id']}

def mutate_db(draw, path:Path):
    "One to four changes to a database: a cell set to a value of another type (text that is not UTF-8 too), a row deleted, a table dropped."
    con = sqlite3.connect(path)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for _ in range(draw(st.integers(1, 4))):
        keyed = [t for t in KEY_COLUMNS if t in tables]
        t = draw(st.sampled_from(tables if not keyed or draw(st.integers(0, 3)) == 3 else keyed))  # hypothesis favours 0: the keyed tables
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')]
        key = [c for c in KEY_COLUMNS.get(t, []) if c in cols]
        n = con.execute(f'SELECT max(rowid) FROM "{t}"').fetchone()[0] or 1
        op, row = draw(st.sampled_from(['set', 'set', 'set', 'set-all', 'not-utf8', 'delete', 'drop'])), draw(st.integers(1, n))
        try:
            if op == 'not-utf8':  # the cell's own text made invalid UTF-8: an error that quoted it would print message text
                c = draw(st.sampled_from(key or cols))
                con.execute(f'''UPDATE "{t}" SET "{c}" = CAST(CAST("{c}" AS BLOB) || X'FF' AS TEXT) WHERE rowid = ? AND typeof("{c}") = 'text' ''', (row,))
            elif op in ('set', 'set-all'):
                c, v = draw(st.sampled_from(cols if not key or draw(st.integers(0, 3)) == 3 else key)), draw(SQL_WEIRD)
                val, arg = ('CAST(? AS TEXT)', 'Ciao \xff'.encode('latin-1')) if v == 'bad-utf8' else ('?', v)
                con.execute(f'UPDATE "{t}" SET "{c}" = {val}' + (' WHERE rowid = ?' if op == 'set' else ''), (arg, row) if op == 'set' else (arg,))
            elif op == 'delete': con.execute(f'DELETE FROM "{t}" WHERE rowid = ?', (row,))
            else: con.execute(f'DROP TABLE "{t}"'); tables.remove(t)
        except sqlite3.Error: pass  # a change SQLite refuses (an INTEGER PRIMARY KEY set to text) is no case
        if not tables: break
    con.commit(); con.close()

TRICKY_LINES = ['01/01/99, 10:00 - Paolo Neri: old', '01/01/1999, 10:00 - Paolo Neri: old', '01/01/2999, 10:00 - Paolo Neri: late',
                '31/02/19, 10:00 - Paolo Neri: x', '01/13/19, 10:00 - Marco: x', '00/00/00, 99:99 - x', '1/1/19, 10:00 - : empty sender',
                'Paolo Neri: no header', '01/01/19, 10:00 - Messages and calls are end-to-end encrypted.', ' ' * 500 + '>',
                'x added y ' * 50, '<This message was edited>', '\u200e[1/1/19, 10:00:00] Paolo Neri: \u200eimage omitted', '\x00',
                '01/01/19, 10:00 - Paolo Neri: <Media omitted>', '01/01/19, 10:00 - Paolo Neri: ' + 'z' * 5000, '\ufeff']

def mutate_text(draw, text:str) -> str:
    "One to four line-level changes to a chat text: lines deleted, repeated, swapped, joined, its digits changed, tricky lines."
    lines = text.split('\n')
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(['delete', 'repeat', 'swap', 'join', 'digits', 'tricky', 'unicode']))
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        if op == 'delete' and len(lines) > 1: del lines[i]
        elif op == 'repeat': lines.insert(i, lines[j])
        elif op == 'swap': lines[i], lines[j] = lines[j], lines[i]
        elif op == 'join' and i + 1 < len(lines): lines[i:i + 2] = [lines[i] + lines[i + 1]]
        elif op == 'digits': lines[i] = re.sub(r'\d+', lambda m: draw(st.sampled_from(['0', '00', '13', '32', '99', '1999', '2999', '9' * 12])), lines[i], count=draw(st.integers(1, 3)))
        elif op == 'tricky': lines.insert(i, draw(st.sampled_from(TRICKY_LINES)))
        elif op == 'unicode': lines[i] = lines[i][:j % 40] + draw(st.text(max_size=8)) + lines[i][j % 40:]
    return '\n'.join(lines)

def encode_text(draw, text:str) -> bytes:
    "The chat text as bytes: UTF-8 mostly, sometimes Latin-1 or UTF-16 (re-saved by some tool), unencodable characters dropped."
    enc = draw(st.sampled_from(['utf-8', 'utf-8', 'utf-8', 'utf-8-sig', 'utf-16', 'latin-1']))
    return text.encode(enc, 'ignore' if enc == 'latin-1' else 'surrogatepass')

# ---- the properties, format by format ---------------------------------------------------------------------------

def mutated_file(draw, path:Path, structural):
    "Mutate the file `path` in place: its structure (`structural(draw, path)`) or its bytes, then perhaps truncate it."
    if draw(st.integers(0, 2)) < 2: structural(draw, path)  # two in three: a change that keeps the file readable
    else: path.write_bytes(mutate_bytes(draw, path.read_bytes()))
    if draw(st.integers(0, 4)) == 0: raw = path.read_bytes(); path.write_bytes(raw[:draw(st.integers(0, len(raw)))])

def json_structural(draw, path:Path):
    o = mutate_json(draw, json.loads(path.read_text(encoding='utf-8')))
    path.write_text(json.dumps(o, ensure_ascii=True), encoding='utf-8')

def txt_structural(draw, path:Path):
    path.write_bytes(encode_text(draw, mutate_text(draw, path.read_text(encoding='utf-8'))))

def zip_structural(draw, path:Path):
    with zipfile.ZipFile(path) as zf: (info,) = zf.infolist(); text = zf.read(info).decode('utf-8')
    name = draw(st.sampled_from([info.filename, info.filename, 'WhatsApp Chat\n.txt', 'notes.txt', '../_chat.txt']))
    with zipfile.ZipFile(path, 'w', draw(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))) as zf:
        zf.writestr(name, encode_text(draw, mutate_text(draw, text)))

def db_structural(draw, path:Path): mutate_db(draw, path)

def fuzz_one(fmt, exports, data, structural, pick=None):
    "Copy the export of `fmt`, mutate one of its files, parse it, check the properties."
    (folder, inp), texts = exports[0][fmt], exports[1]
    work, td = workcopy(folder)
    with td:
        files = sorted(p for p in work.rglob('*') if p.is_file())
        target = data.draw(st.sampled_from(files)) if pick == 'any' else work/inp.relative_to(folder)
        mutated_file(data.draw, target, structural)
        run_case(fmt, work, work/inp.relative_to(folder), texts)

@fuzz('msgstore')
@given(data=st.data())
def test_msgstore(exports, data): fuzz_one('msgstore', exports, data, db_structural)

@fuzz('legacy')
@given(data=st.data())
def test_msgstore_legacy(exports, data): fuzz_one('legacy', exports, data, db_structural)

@fuzz('whatsapp-json')
@given(data=st.data())
def test_whatsapp_json(exports, data): fuzz_one('whatsapp-json', exports, data, json_structural)

@fuzz('txt')
@given(data=st.data())
def test_whatsapp_txt(exports, data): fuzz_one('txt', exports, data, txt_structural)

@fuzz('zip')
@given(data=st.data())
def test_whatsapp_zip(exports, data): fuzz_one('zip', exports, data, zip_structural)

@fuzz('telegram')
@given(data=st.data())
def test_telegram(exports, data): fuzz_one('telegram', exports, data, json_structural)

@fuzz('messenger')
@given(data=st.data())
def test_messenger(exports, data): fuzz_one('messenger', exports, data, json_structural, pick='any')  # any file of the thread

# ---- the unchanged exports, and the same cases in a real process --------------------------------------------------

@pytest.mark.parametrize('fmt', list(EXAMPLES))
def test_unchanged_exports_parse(exports, fmt):
    "Without a mutation every export parses (exit 0): the properties above are not met by refusing everything."
    _, inp = exports[0][fmt]
    with tempfile.TemporaryDirectory() as w:
        rc, so, se = parse(inp, Path(w)/'messages.jsonl')
        assert rc == 0, se
        check_output(Path(w)/'messages.jsonl')

def in_a_process(inp:Path, out:Path) -> tuple[int, str, str]:
    "Run `chatmimic parse INP --me OWNER -o OUT` as the installed command: (exit status, stdout, stderr)."
    r = run_chatmimic('parse', inp, '--me', OWNER, '-o', out)
    return r.returncode, r.stdout, r.stderr

@pytest.mark.parametrize('fmt,rc', [('msgstore', 2), ('txt', 0), ('telegram', 2)])
def test_same_in_a_real_process(exports, fmt, rc):
    "A third of each export through the installed command: the same properties (a shorter .txt is still a chat; the rest are damaged)."
    (folder, inp), texts = exports[0][fmt], exports[1]
    work, td = workcopy(folder)
    with td:
        p = work/inp.relative_to(folder)
        p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 3])
        assert run_case(fmt, work, p, texts, in_a_process) == rc

def test_zz_cases_counted():
    "How many bad-input cases the property tests ran (they run first: this test is last in the file)."
    if not CASES: pytest.skip('the property tests did not run')
    print(f"\n{sum(CASES.values())} bad-input cases: " + ', '.join(f'{f} {n}' for f, n in CASES.items()))
    assert CASES == Counter({f: n for f, n in EXAMPLES.items() if f in CASES})  # each ran all its examples, none more
