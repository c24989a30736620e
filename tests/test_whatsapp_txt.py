"`chatmimic parse` on WhatsApp 'Export chat' .txt/.zip files: bad input is one line naming the file; --tz and --date-order."
import json, zipfile
import pytest
from conftest import run_chatmimic, assert_user_error

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
