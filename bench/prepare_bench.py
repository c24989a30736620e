"""Prepare: a 1,000,000-message JSONL to the saved, tokenized DatasetDict, against tokenizing every message once.

    .venv/bin/python bench/prepare_bench.py [--messages 1000000] [--tokenizer gemma3-270m] [--rounds 1] [--dir /tmp/chatmimic-prepare-bench] [-- PREPARE ARGS]

Goals (issue 16, on a 2-core machine): the whole command takes no longer than the floor, and the peak memory of its
process tree (PSS: pages shared by the tokenizing workers counted once) stays under 1.5 GiB.
The input is the synthetic WhatsApp export parsed to JSONL (made once and kept in --dir, not timed); the tokenizer is
Gemma 3's (`gemma3-270m`, or --tokenizer demo-bpe / a folder). What is timed is the real command, `chatmimic prepare`,
in a fresh process, preparing one dataset (full/; `tokenizer_qlora=''` skips the second) with the study's settings and
every example kept (`max_examples_full=0`): start-up, reading, pseudonymizing, splitting the replies, tokenizing
(worker processes), assembling, saving. The reference, run the same way in the same run, is the floor any prepare
must pay: one process that tokenizes every message line once with one batched `tokenizer(texts)` call (the Rust
tokenizer on every core), only that call timed. Each round runs both; wall and CPU time, peak RSS and PSS of the
process tree of each are printed, and their ratios.
"""
import argparse, json, os, shutil, subprocess, sys, time, tempfile
from pathlib import Path
from measure import run_measured, line, gb

CHATMIMIC = Path(sys.executable).with_name('chatmimic')  # the console script installed next to this Python

def corpus(d:Path, n:int, owner:str) -> Path:
    "The synthetic export of `n` messages parsed to JSONL, made once."
    out = d/'messages.jsonl'
    if out.exists() and not os.environ.get('REGEN'): return out
    from chatmimic.synth_exports import synth_export
    t = time.perf_counter(); synth_export(d, n_messages=n, seed=0, owner=owner)
    subprocess.run([str(CHATMIMIC), 'parse', str(d/'msgstore.db'), '--contacts', str(d/'wa.db'), '--me', owner, '-o', str(out), '-q'], check=True)
    print(f'corpus: {n:,} messages in {time.perf_counter() - t:.0f} s, {out.stat().st_size / 1e6:.0f} MB JSONL')
    return out

def floor(jsonl:str, tok:str, owner:str, result:str):
    "The reference, in its own process: every message line (as prepare builds them) tokenized once by one call; only the call is timed."
    from chatmimic.models import get_tokenizer
    from chatmimic.prepare import read_messages, message_stream
    st, _ = message_stream(read_messages(jsonl), owner)
    texts = st.text.to_pylist()
    tk = get_tokenizer(tok, texts)
    t, c = time.perf_counter(), time.process_time()
    enc = tk(texts, add_special_tokens=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    Path(result).write_text(json.dumps(dict(wall=wall, cpu=cpu, lines=len(texts), distinct=len(set(texts)), tokens=sum(map(len, enc['input_ids'])))))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--messages', type=int, default=1_000_000)
    ap.add_argument('--dir', default='/tmp/chatmimic-prepare-bench')
    ap.add_argument('--tokenizer', default='gemma3-270m', help='gemma3-270m (the goal), demo-bpe, or a tokenizer folder')
    ap.add_argument('--owner', default='Paolo Neri')
    ap.add_argument('--rounds', type=int, default=1, help='each round runs the command and the reference once')
    ap.add_argument('--floor', nargs=2, metavar=('JSONL', 'RESULT'), help=argparse.SUPPRESS)  # the reference's own process
    ap.add_argument('rest', nargs='*', help='more `chatmimic prepare` arguments, after --')
    a = ap.parse_args()
    if a.floor: return floor(a.floor[0], a.tokenizer, a.owner, a.floor[1])
    d = Path(a.dir); d.mkdir(parents=True, exist_ok=True)
    jsonl, out = corpus(d, a.messages, a.owner), d/'prepared'
    cmd = [str(CHATMIMIC), 'prepare', str(jsonl), '--me', a.owner, '--tokenizer-full', a.tokenizer, '--tokenizer-qlora', '',
           '-o', str(out), '-q', 'max_examples_full=0', *a.rest]
    print(f'$ {" ".join(cmd)}   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)')
    ratios = []
    for k in range(a.rounds):
        shutil.rmtree(out, ignore_errors=True)
        with tempfile.TemporaryFile() as err:
            ours = run_measured(cmd, stderr=err)
            if ours['rc']: err.seek(0); sys.exit(f'chatmimic prepare failed: {err.read().decode().strip()}')
        with tempfile.TemporaryDirectory() as t:
            ref = run_measured([sys.executable, __file__, '--tokenizer', a.tokenizer, '--owner', a.owner, '--floor', str(jsonl), f'{t}/r.json'])
            call = json.loads(Path(f'{t}/r.json').read_text())
        stats, size = json.loads((out/'full'/'stats.json').read_text()), sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 1e9
        ref_call = dict(ref, wall=call['wall'], cpu=call['cpu'])  # the floor: the tokenizer call alone; memory: its whole process
        print(f"round {k + 1}: {stats['messages']:,} messages -> {stats['examples']:,} examples, {stats['tokens']:,} tokens ({size:.2f} GB on disk); "
              f"{call['lines']:,} message lines ({call['distinct']:,} distinct, {call['tokens']:,} tokens); load average {os.getloadavg()[0]:.1f}")
        print('  ' + line('reference, tokenizer(every line) in one process', ref_call, mem=gb))
        print('  ' + line('chatmimic prepare, the whole command', ours, ref_call, mem=gb))
        print(f"  inside the command: selecting {stats['seconds']['messages']} s, tokenizing {stats['seconds']['tokenize']} s, examples+saving "
              f"{stats['seconds']['examples']} s")
        ratios.append((ours['wall'] / ref_call['wall'], ours['cpu'] / ref_call['cpu'], ours['pss']))
    w, c, p = (sorted(x)[len(x) // 2] for x in zip(*ratios))
    print(f"goal: time <= the floor: ratio {w:.2f} wall, {c:.2f} CPU ({'met' if w <= 1 else 'NOT met'}); "
          f"peak PSS <= 1.5 GiB: {gb(p)} ({'met' if p <= 1.5 * 2**30 else 'NOT met'})" + (f' (medians of {a.rounds} rounds)' if a.rounds > 1 else ''))

if __name__ == '__main__': main()
