"The blind test as a friend takes it: `chatmimic blind` writes the page, headless Chromium opens it, every question is answered with the mouse, the answers are downloaded and `chatmimic blind --score` scores them; nothing leaves the page."
import json, time
from pathlib import Path
import pytest
from conftest import run_chatmimic, assert_user_error
from test_docs import CHROMIUM, Chromium

EVIL = '<script>alert("gotcha")</script>'

def compare_folder(path:Path) -> Path:
    "A compare folder as `audit_run` leaves it: blind.json with the replies (one of them a script)."
    items = [dict(chat=f'Chat {i} <b>', context=f'Marco: ci vediamo alle {i}?\nAnna: io ci sono & tu?',
                  real=[f'sì, alle {i}', 'porto io la palla ⚽'], replies={'full': [EVIL if i == 0 else f'forse alle {i + 1}'], 'qlora': [f'ok {i}']})
             for i in range(6)]
    path.mkdir(parents=True)
    (path/'blind.json').write_text(json.dumps(dict(owner='Paolo Neri', labels=['full', 'qlora'], items=items)))
    return path

def click(br, selector:str):
    "A real mouse click (pressed, released) in the middle of the element `selector`."
    js = (f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}});"
          " const r = e.getBoundingClientRect(); return JSON.stringify([r.x + r.width / 2, r.y + r.height / 2]); })()")
    x, y = json.loads(br.call('Runtime.evaluate', expression=js, returnByValue=True)['result']['value'])
    for t in ('mouseMoved', 'mousePressed', 'mouseReleased'):
        br.call('Input.dispatchMouseEvent', type=t, x=x, y=y, button='left' if t != 'mouseMoved' else 'none', clickCount=1)

def value(br, expression:str):
    return br.call('Runtime.evaluate', expression=expression, returnByValue=True)['result'].get('value')

@pytest.mark.skipif(CHROMIUM is None, reason='needs Chromium (Debian: apt-get install chromium)')
def test_blind_page_in_headless_chromium(tmp_path):
    from chatmimic.blind import blind_questions
    cmp = compare_folder(tmp_path/'compare')
    page = tmp_path/'page.html'
    r = run_chatmimic('blind', cmp, '-o', page, '-n', '6', '--seed', '3')
    assert r.returncode == 0, r.stderr
    assert page.stat().st_mode & 0o777 == 0o600
    raw = page.read_text()
    assert EVIL not in raw and 'alert(&quot;gotcha&quot;)' in raw and 'porto io la palla' not in r.stdout + r.stderr

    items = json.loads((cmp/'blind.json').read_text())['items']
    qs = blind_questions(items, ['full', 'qlora'], 6, 3)  # the key, made independently of the page
    downloads = tmp_path/'downloads'; downloads.mkdir()
    br = Chromium(tmp_path/'profile')
    try:
        br.call('Browser.setDownloadBehavior', behavior='allow', downloadPath=str(downloads))
        br.events = []
        br.call('Page.navigate', url=page.as_uri())
        t0 = time.time()
        while not any(e.get('method') == 'Page.loadEventFired' for e in br.events):
            assert time.time() - t0 < 60, 'the page did not load'
            br.events.append(json.loads(br.ws.recv()))
        assert 'alert("gotcha")' in value(br, 'document.body.innerText')  # the script is shown as text
        assert value(br, 'document.getElementById("save").disabled') is True
        for q in qs:  # the real reply for the full model's questions, the other one for qlora's
            side = q['real'] if q['model'] == 'full' else 'AB'[q['real'] == 'A']
            click(br, f'button.pick[data-q="{q["q"]}"][data-side="{side}"]')
        assert value(br, 'document.getElementById("count").textContent') == '6 of 6 answered'
        assert value(br, 'document.querySelectorAll("button.pick.chosen").length') == 6
        click(br, '#save')
        t0 = time.time()
        while not (downloads/'blind-answers.json').exists():
            assert time.time() - t0 < 30, f'no download: {sorted(p.name for p in downloads.iterdir())}'
            time.sleep(0.2)
        time.sleep(0.3)
        ev = br.events
        requests = [e['params']['request']['url'] for e in ev if e.get('method') == 'Network.requestWillBeSent']
        assert [u for u in requests if not u.startswith('blob:')] == [page.as_uri()], requests  # only the page itself
        assert not [e for e in ev if e.get('method') in ('Runtime.exceptionThrown', 'Page.javascriptDialogOpening')]
    finally:
        br.close()

    answers = json.loads((downloads/'blind-answers.json').read_text())
    assert set(answers['answers'].values()) <= {'A', 'B'} and len(answers['answers']) == 6
    assert not any(t in json.dumps(answers) for t in ('palla', 'alle', 'gotcha'))  # picks, no message text
    r = run_chatmimic('blind', '--score', downloads/'blind-answers.json', cmp)
    assert r.returncode == 0, r.stderr
    rows = {l.split()[0]: l.split() for l in r.stdout.splitlines() if l.split() and l.split()[0] in ('full', 'qlora', 'all')}
    n_full = sum(q['model'] == 'full' for q in qs)
    assert rows['full'][1:4] == [str(n_full), str(n_full), '1.00'], r.stdout   # answers, correct, share
    assert rows['qlora'][1:4] == [str(6 - n_full), '0', '0.00'], r.stdout
    assert rows['all'][1:3] == ['6', str(n_full)], r.stdout

def test_blind_command_errors(tmp_path):
    cmp = compare_folder(tmp_path/'compare')
    (tmp_path/'empty').mkdir()
    assert_user_error(run_chatmimic('blind', tmp_path/'empty', '-o', tmp_path/'p.html'), 'empty', tmp_path/'p.html')
    assert_user_error(run_chatmimic('blind', cmp, '-o', tmp_path/'p.html', '--models', 'nope'), 'blind.json', tmp_path/'p.html')
    assert_user_error(run_chatmimic('blind', cmp, '-o', cmp/'blind.json'), 'blind.json')  # never over its input
    assert run_chatmimic('blind', cmp).returncode == 2
    bad = tmp_path/'bad.json'; bad.write_text('{"answers": 1}')
    assert_user_error(run_chatmimic('blind', '--score', bad, cmp), 'bad.json')
    other = tmp_path/'other.json'
    other.write_text(json.dumps(dict(chatmimic='blind', page='0' * 16, seed=0, models=['full'], questions=3, answers={'1': 'A'})))
    line = assert_user_error(run_chatmimic('blind', '--score', other, cmp), 'other.json')
    assert 'another page' in line
