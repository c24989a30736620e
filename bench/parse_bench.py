"""Parse: a 1,000,000-message synthetic msgstore.db (or iPhone ChatStorage.sqlite) with the study's ~95 MB of text, to JSONL.

    .venv/bin/python bench/parse_bench.py [--format msgstore|ios] [--messages 1000000] [--text-mb 95] [--rounds 1] [--dir /tmp/chatmimic-bench]

Goals on a 2-core machine: the command a user runs (`chatmimic parse ... -q`) within 2x the floor (issue 16) and
30 s (issue 2), its peak memory (RSS) under 300 MB whatever the history's size (issue 16: it streams chat by chat).
The synthetic messages are short (~30 bytes), so the bench lengthens every text in place, repeating it, until
the export holds `--text-mb` MB of text, the study's corpus size (§2.3: 95.1 MB).
The reference is the least any parser must do: one SELECT over the message table (`message`, or the iPhone's
`ZWAMESSAGE`) with json.dumps of each raw row to a file; the ratio ours/reference is what joins, classification,
ordering and records cost. Both run as their own process, one after the other in each round; wall and CPU time
(on a shared, loaded machine CPU time moves less) and peak memory of each are printed, and their ratios.
`--format ios` holds the iPhone database to the same budget (issue 17).
"""
import argparse, os, json, sqlite3, sys, time
from pathlib import Path
from measure import run_measured, line, mb

FORMATS = {  # the message table, its text column, the floor's columns
    'msgstore': ('message', 'text_data', '_id, chat_row_id, from_me, timestamp, message_type, text_data'),
    'ios': ('ZWAMESSAGE', 'ZTEXT', 'Z_PK, ZCHATSESSION, ZISFROMME, ZMESSAGEDATE, ZMESSAGETYPE, ZTEXT')}

def reference(db, out, fmt='msgstore'):
    "The floor: stream every message row out as JSON, no joins, no classification."
    table, _, cols = FORMATS[fmt]
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    with open(out, 'w') as f:
        for row in con.execute(f'select {cols} from {table}'):
            f.write(json.dumps(row, ensure_ascii=False)); f.write('\n')
    con.close()

def text_mb(con, fmt='msgstore'):
    table, col, _ = FORMATS[fmt]
    return con.execute(f'select coalesce(sum(length(cast({col} as blob))), 0) from {table}').fetchone()[0] / 1e6

def inflate(db, target_mb, fmt='msgstore'):
    "Lengthen every text (repeating it, cut at a whole factor) until the table holds about `target_mb` MB of text."
    table, col, _ = FORMATS[fmt]
    con = sqlite3.connect(db)
    f = target_mb / text_mb(con, fmt)
    if f > 1:
        k = int(f) + 1  # enough copies, then cut each text to f times its length
        rep = " || ' ' || ".join([col] * k)
        con.execute(f'update {table} set {col} = substr({rep}, 1, cast(length({col}) * {f} as int)) where {col} is not null')
        con.commit()
    mb = text_mb(con, fmt); con.close()
    return mb

def build(d:Path, db:Path, wa:Path, a):
    "The synthetic database of `a.messages` with `a.text_mb` MB of text, made once."
    from chatmimic.synth import make_truth
    from chatmimic.synth_exports import synth_export
    from chatmimic.synth_exports import write_chatstorage, write_contactsv2
    t = time.perf_counter()
    if a.format == 'msgstore': synth_export(d, n_messages=a.messages, seed=0)
    else: truth = make_truth(a.messages, 0); write_chatstorage(truth, db); write_contactsv2(truth, wa); del truth
    mb_ = inflate(db, a.text_mb, a.format); (d/'ready').touch()
    print(f'synthetic {db.name}: {a.messages:,} messages, {mb_:.0f} MB of text, built in {time.perf_counter()-t:.1f} s')

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--messages', type=int, default=1_000_000)
    ap.add_argument('--text-mb', type=float, default=95.0, help="MB of message text (the study's corpus: 95)")
    ap.add_argument('--dir', default='/tmp/chatmimic-bench')
    ap.add_argument('--target', type=float, default=30.0, help='seconds allowed (issue 2)')
    ap.add_argument('--format', choices=list(FORMATS), default='msgstore', help="Android's msgstore.db or the iPhone's ChatStorage.sqlite")
    ap.add_argument('--rounds', type=int, default=1, help='each round runs the reference and the command once')
    ap.add_argument('--floor', nargs=2, metavar=('DB', 'OUT'), help=argparse.SUPPRESS)  # the reference's own process
    a = ap.parse_args()
    if a.floor: return reference(a.floor[0], a.floor[1], a.format)
    d = Path(a.dir)/f'{"ios-" if a.format == "ios" else ""}n{a.messages}-t{a.text_mb:g}'; d.mkdir(parents=True, exist_ok=True)
    db, wa = (d/'msgstore.db', d/'wa.db') if a.format == 'msgstore' else (d/'ChatStorage.sqlite', d/'ContactsV2.sqlite')
    out = d/'messages.jsonl'
    if not (d/'ready').exists(): build(d, db, wa, a)
    cmd = [str(Path(sys.executable).with_name('chatmimic')), 'parse', str(db), '--contacts', str(wa), '--me', 'Paolo Neri', '-o', str(out), '-q']
    print(f'$ {" ".join(cmd)}   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)')
    res = []
    for k in range(a.rounds):
        ref = run_measured([sys.executable, __file__, '--format', a.format, '--floor', str(db), str(d/'ref.jsonl')])
        ours = run_measured(cmd)
        if ours['rc'] or ref['rc']: sys.exit('the command or the reference failed')
        n = sum(1 for _ in open(out, 'rb'))
        print(f'round {k + 1}: {n:,} messages, JSONL {out.stat().st_size/1e6:.0f} MB; load average {os.getloadavg()[0]:.1f}')
        print('  ' + line('reference, SELECT + json.dumps', ref))
        print('  ' + line('chatmimic parse -q', ours, ref) + f' ({n / ours["wall"]:,.0f} msg/s)')
        res.append((ours['wall'] / ref['wall'], ours['cpu'] / ref['cpu'], max(ours['rss'], ours['self_rss']), ours['wall'], ours['cpu']))
    w, c, r, t, tc = (sorted(x)[len(x) // 2] for x in zip(*res))
    print(f"goals: within 2x the floor: {w:.2f} wall, {c:.2f} CPU ({'met' if max(w, c) <= 2 else 'NOT met'}); peak RSS <= 300 MB: {mb(r)} "
          f"({'met' if r <= 300e6 else 'NOT met'}); within {a.target:.0f} s: {t:.1f} s wall, {tc:.1f} s CPU ({'met' if t <= a.target else 'NOT met'})"
          + (f' (medians of {a.rounds} rounds)' if a.rounds > 1 else ''))

if __name__ == '__main__': main()
