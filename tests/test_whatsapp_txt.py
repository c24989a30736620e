"`chatmimic parse` on WhatsApp 'Export chat' .txt/.zip files: bad input is one line naming the file; --tz and --date-order."
import json, os, random, subprocess, time, zipfile
import pytest
from conftest import CHATMIMIC, run_chatmimic, assert_user_error

ME = ('--me', 'Paolo Neri')
CHAT = '01/02/19, 10:12 - Paolo Neri: Presente!\n01/02/19, 10:15 - Marco Rossi: Perfetto: a dopo\n'

def parse(tmp_path, path, *args):
    "Run `chatmimic parse` on `path`; returns (result, output path)."
    out = tmp_path/'out.jsonl'
    return run_chatmimic('parse', path, *args, '-o', out), out

def timestamps(r, out):
    "The timestamps of a successful run's output."
    assert r.returncode == 0, r.returncode
    assert 'Traceback' not in r.stderr and 'Presente' not in r.stdout + r.stderr  # no message text printed
    return [json.loads(l)['timestamp'] for l in out.read_text().splitlines()]

BAD_TXT = [  # (file name, bytes, extra arguments, what the one-line error must say)
    ('WhatsApp Chat with Marco Rossi.txt', b'', ME, 'empty'),
    ('WhatsApp Chat with Marco Rossi.txt', b'\n \n', ME + ('--format', 'whatsapp-txt'), 'empty'),
    ('notes.txt', b'shopping list\n3/4 eggs\nmilk: 2 l\n', ME, 'not a WhatsApp chat export'),
    ('WhatsApp Chat with Marco Rossi.txt', '01/02/19, 10:12 - Paolo Neri: Sì, così\n'.encode('latin-1'), ME, 'encoding'),
    ('WhatsApp Chat with Marco Rossi.txt', CHAT.encode(), (), '--me'),
    ('WhatsApp Chat with Marco Rossi.txt', b'13/01/19, 10:00 - Paolo Neri: a\n01/13/19, 10:00 - Marco Rossi: b\n', ME, '--date-order'),
]

@pytest.mark.parametrize('name,data,args,says', BAD_TXT)
def test_bad_txt(tmp_path, name, data, args, says):
    p = tmp_path/name
    p.write_bytes(data)
    r, out = parse(tmp_path, p, *args)
    assert says in assert_user_error(r, p, out)

def test_zip_without_chat(tmp_path):
    p = tmp_path/'WhatsApp Chat - Calcetto.zip'
    with zipfile.ZipFile(p, 'w') as zf: zf.writestr('00000012-PHOTO-2019-03-14-00-32-00.jpg', b'\xff\xd8\xff')
    r, out = parse(tmp_path, p, *ME)
    assert 'no chat .txt' in assert_user_error(r, p, out)

def test_date_order(tmp_path):
    p = tmp_path/'WhatsApp Chat with Marco Rossi.txt'
    p.write_text(CHAT)
    assert timestamps(*parse(tmp_path, p, *ME)) == ['2019-02-01T10:12:00Z', '2019-02-01T10:15:00Z']  # day-first assumed
    assert timestamps(*parse(tmp_path, p, *ME, '--date-order', 'mdy'))[0] == '2019-01-02T10:12:00Z'
    p.write_text('2019/02/01 10:12 - Paolo Neri: Presente!\n')
    assert timestamps(*parse(tmp_path, p, *ME, '--date-order', 'ymd')) == ['2019-02-01T10:12:00Z']

def test_tz(tmp_path):
    p = tmp_path/'WhatsApp Chat with Marco Rossi.txt'
    p.write_text(CHAT + '01/07/19, 10:12 - Paolo Neri: Presente!\n')
    assert timestamps(*parse(tmp_path, p, *ME))[::2] == ['2019-02-01T10:12:00Z', '2019-07-01T10:12:00Z']
    assert timestamps(*parse(tmp_path, p, *ME, '--tz', 'Europe/Rome'))[::2] == ['2019-02-01T09:12:00Z', '2019-07-01T08:12:00Z']
    assert timestamps(*parse(tmp_path, p, *ME, '--tz', 'America/New_York'))[::2] == ['2019-02-01T15:12:00Z', '2019-07-01T14:12:00Z']

def test_ios_zip(tmp_path):
    p = tmp_path/'WhatsApp Chat - Emily Carter.zip'
    chat = '\u200e[3/14/19, 9:14:03\u202fAM] Emily Carter: \u200eimage omitted\n[3/14/19, 9:15:10\u202fPM] Paolo Neri: Coffee?\n'
    with zipfile.ZipFile(p, 'w') as zf: zf.writestr('_chat.txt', chat)
    r, out = parse(tmp_path, p, *ME)
    assert timestamps(r, out) == ['2019-03-14T09:14:03Z', '2019-03-14T21:15:10Z']
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [(m['chat'], m['kind'], m['from_me']) for m in rows] == [('Emily Carter', 'media', False), ('Emily Carter', 'text', True)]

# ---- issue 14: the owner, dates, limits, damaged zips, linear time --------------------------------------------

def test_me_matching_nobody_is_refused(tmp_path):
    p = tmp_path/'WhatsApp Chat with Marco Rossi.txt'
    p.write_text(CHAT)
    r, out = parse(tmp_path, p, '--me', 'Paolo')  # a typo: 'Paolo Neri' in the file
    line = assert_user_error(r, p, out)
    assert 'not among the senders of this chat' in line and 'Marco' not in line.split(':', 2)[2]  # nobody else's name printed

def test_dates_out_of_range_are_skipped(tmp_path):
    p = tmp_path/'WhatsApp Chat with Marco Rossi.txt'
    p.write_text(CHAT + '01/02/1999, 10:16 - Marco Rossi: prima di WhatsApp\n01/02/2999, 10:17 - Marco Rossi: nel futuro\n')
    r, out = parse(tmp_path, p, *ME)
    assert timestamps(r, out) == ['2019-02-01T10:12:00Z', '2019-02-01T10:15:00Z']
    p.write_text('01/02/1999, 10:12 - Paolo Neri: x\n01/02/2999, 10:15 - Marco Rossi: y\n')
    out.unlink()
    r, out = parse(tmp_path, p, *ME)
    assert 'none of its 2 messages can be used (2 with a date out of range)' in assert_user_error(r, p, out)

def run_env(env:dict, *args):
    "Run the installed `chatmimic` with `env` added to the environment."
    return subprocess.run([str(CHATMIMIC), *map(str, args)], capture_output=True, text=True, timeout=600, env=dict(os.environ, **env))

def zip_of(path, text, name='_chat.txt'):
    "A deflated zip at `path` holding `text` as `name`."
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as zf: zf.writestr(name, text)
    return path

def test_zip_limits(tmp_path):
    "A 200 KB zip of 70 MB of repeated lines is refused before it is unpacked: by its ratio, past that by its size; variables raise both."
    bomb = zip_of(tmp_path/'WhatsApp Chat - Bomba.zip', '01/02/19, 10:12 - Paolo Neri: ciao\n' * 2_000_000)
    assert bomb.stat().st_size < 250_000
    r, out = parse(tmp_path, bomb, *ME)
    line = assert_user_error(r, bomb, out)
    assert 'times its packed size, more than the 100 times that chat text ever does' in line and 'CHATMIMIC_MAX_ZIP_RATIO=' in line
    r = run_env({'CHATMIMIC_MAX_ZIP_RATIO': '1000'}, 'parse', bomb, *ME, '-o', out)
    line = assert_user_error(r, bomb, out)
    assert 'more than the 64 MB allowed for a file inside an archive' in line and 'CHATMIMIC_MAX_MEMBER_MB=' in line
    rng, words = random.Random(0), 'ciao domani sera calcetto porto pallone campo alle nove vieni anche tu certo'.split()
    chat = ''.join(f'01/02/19, 10:{i % 60:02d} - {rng.choice(["Paolo Neri", "Marco Rossi"])}: '
                   f'{" ".join(rng.choice(words) for _ in range(8))} {rng.randrange(10**6)}\n' for i in range(22_000))  # 1.6 MB, packs ~4x
    small = zip_of(tmp_path/'WhatsApp Chat - Marco Rossi.zip', chat)
    r = run_env({'CHATMIMIC_MAX_MEMBER_MB': '1'}, 'parse', small, *ME, '-o', tmp_path/'o.jsonl')
    assert 'more than the 1 MB allowed' in assert_user_error(r, small, tmp_path/'o.jsonl')
    r = run_env({'CHATMIMIC_MAX_MEMBER_MB': '2'}, 'parse', small, *ME, '-o', tmp_path/'o.jsonl')
    assert r.returncode == 0, r.stderr

def test_line_limit(tmp_path):
    p = tmp_path/'WhatsApp Chat with Marco Rossi.txt'
    p.write_text(CHAT + '01/02/19, 10:16 - Marco Rossi: ' + 'a' * 2000 + '\n')
    r = run_env({'CHATMIMIC_MAX_LINE_CHARS': '1000'}, 'parse', p, *ME, '-o', tmp_path/'o.jsonl')
    line = assert_user_error(r, p, tmp_path/'o.jsonl')
    assert 'the message on line 3 has a line longer than the 1,000 characters allowed' in line and 'CHATMIMIC_MAX_LINE_CHARS=' in line
    assert 'aaaa' not in line
    r = run_env({'CHATMIMIC_MAX_LINE_CHARS': 'abc'}, 'parse', p, *ME, '-o', tmp_path/'o.jsonl')
    assert "CHATMIMIC_MAX_LINE_CHARS='abc' is not a positive whole number" in r.stderr and r.returncode == 2

@pytest.mark.parametrize('damage', ['flip', 'cut'])
def test_damaged_zip(tmp_path, damage):
    "A zip whose compressed data is damaged (zlib's error) or cut short inside (a negative seek): one sentence, not a traceback."
    text = ''.join(f'01/02/19, 10:{i % 60:02d} - Paolo Neri: messaggio numero {i} {"x" * (i % 17)}\n' for i in range(3000))
    p = zip_of(tmp_path/'WhatsApp Chat - Marco Rossi.zip', text)
    raw, at = p.read_bytes(), 30 + len('_chat.txt') + 200
    p.write_bytes(raw[:at] + bytes([raw[at] ^ 0xff]) + raw[at + 1:] if damage == 'flip' else raw[:at - 100] + raw[at + 200:])
    r, out = parse(tmp_path, p, *ME)
    assert 'is not a readable zip' in assert_user_error(r, p, out)

def read_time(tmp_path, body:str) -> float:
    "CPU seconds to read a one-to-one chat holding one message `body` from the peer (best of three)."
    from chatmimic.parse import ParseOptions
    from chatmimic.whatsapp_txt import read_whatsapp_txt
    p = tmp_path/'WhatsApp Chat with Marco Rossi.txt'
    p.write_text(f'01/02/19, 10:12 - Paolo Neri: ciao\n01/02/19, 10:13 - Marco Rossi: {body}\n')
    best = float('inf')
    for _ in range(3):
        t0 = time.process_time(); list(read_whatsapp_txt(p, ParseOptions(me='Paolo Neri'))); best = min(best, time.process_time() - t0)
    return best

@pytest.mark.parametrize('shape', ['notice words, then many lines', 'blank lines, then >'])
def test_long_message_reads_in_linear_time(tmp_path, shape):
    "8 times the message, about 8 times the time (before the fix, regexes that backtrack made it ~64 times: 14 s at 16,000)."
    body = (lambda n: 'x added ' * n + '\n' + 'riga\n' * n) if shape.startswith('notice') else (lambda n: 'a' + ' \n' * n + 'b>')
    small, large = read_time(tmp_path, body(2000)), read_time(tmp_path, body(16000))
    assert large / small < 24, (small, large)
