"""Prepare speed: a 1,000,000-message JSONL to the saved, tokenized DatasetDict, against one plain tokenizer call.

    .venv/bin/python bench/prepare_bench.py [--messages 1000000] [--dir /tmp/chatmimic-prepare-bench] [-- PREPARE ARGS]

Target (issue 3): <= 90 s on a 2-core machine (the study: 45 minutes from database to examples). The input is the
synthetic WhatsApp export parsed to JSONL (made once and kept in --dir, not timed); the tokenizer is the GPT-2-style
byte-level BPE trained on it (or --tokenizer gemma3-270m). What is timed is the real command, `chatmimic prepare`,
in a fresh process: imports, reading, pseudonymizing, tokenizing (datasets.map, 2 processes), assembling, splitting,
saving. The reference, timed in this process, is the same tokenization done the plain way: one batched
`tokenizer(texts)` call over every message line, with nothing around it.
"""
import argparse, json, os, shutil, subprocess, sys, time
from pathlib import Path

CHATMIMIC = Path(sys.executable).with_name('chatmimic')  # the console script installed next to this Python

def corpus(d:Path, n:int, owner:str) -> Path:
    "The synthetic export of `n` messages parsed to JSONL, made once."
    out = d/'messages.jsonl'
    if out.exists() and not os.environ.get('REGEN'): return out
    from chatmimic.synth import synth_export
    from chatmimic.parse import ParseOptions, parse_inputs, write_jsonl
    t = time.perf_counter(); synth_export(d, n_messages=n, seed=0, owner=owner)
    msgs = parse_inputs([d/'msgstore.db'], ParseOptions(me=owner, contacts=str(d/'wa.db')))
    write_jsonl(msgs, out)
    print(f'corpus: {len(msgs):,} messages in {time.perf_counter() - t:.0f} s, {out.stat().st_size / 1e6:.0f} MB JSONL')
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--messages', type=int, default=1_000_000)
    ap.add_argument('--dir', default='/tmp/chatmimic-prepare-bench')
    ap.add_argument('--tokenizer', default=None, help='default: a GPT-2-style BPE trained on the corpus')
    ap.add_argument('--owner', default='Paolo Neri')
    ap.add_argument('--target', type=float, default=90.0, help='seconds allowed (issue 3)')
    ap.add_argument('rest', nargs='*', help='more `chatmimic prepare` arguments, after --')
    a = ap.parse_args()
    d = Path(a.dir); d.mkdir(parents=True, exist_ok=True)
    jsonl = corpus(d, a.messages, a.owner)
    from chatmimic.models import train_demo_tokenizer, load_tokenizer
    from chatmimic.prepare import read_messages, message_stream, PrepareConfig
    tok_path = a.tokenizer
    if tok_path is None:
        tok_path = d/'tok'
        if not (tok_path/'tokenizer.json').exists():
            texts = [t for t in read_messages(jsonl).column('text').slice(0, 200_000).to_pylist() if t]
            train_demo_tokenizer(texts, 8000, tok_path)
    out = d/'dataset'
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(CHATMIMIC), 'prepare', str(jsonl), '--me', a.owner, '--tokenizer', str(tok_path), '-o', str(out), '-q', *a.rest]
    t = time.perf_counter(); r = subprocess.run(cmd, capture_output=True, text=True); t_ours = time.perf_counter() - t
    if r.returncode: sys.exit(f'chatmimic prepare failed: {r.stderr.strip()}')
    stats = json.loads((out/'stats.json').read_text())
    size = sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 1e9
    # the reference: the same message lines, one plain batched call in this process
    tok = load_tokenizer(str(tok_path))
    st, _ = message_stream(read_messages(jsonl), PrepareConfig(me=a.owner))
    texts = st.text.to_pylist()
    t = time.perf_counter(); enc = tok(texts, add_special_tokens=False); t_ref = time.perf_counter() - t
    n_tok = sum(map(len, enc['input_ids']))
    sec = stats['seconds']
    print(f"prepared {stats['messages']:,} messages -> {stats['examples']:,} examples, {stats['tokens']:,} tokens "
          f"({size:.2f} GB on disk) in {t_ours:.1f} s (whole command: start, imports, save included)")
    print(f"  inside: selecting+pseudonymizing {sec['messages']} s, tokenize {sec['tokenize']} s ({len(set(texts)):,} distinct lines), "
          f"examples+split {sec['examples']} s; removed {stats['removed']}; leak rate {stats['leak']['leak_rate']:.3f}")
    print(f"reference: one plain tokenizer(texts) call over the {len(texts):,} message lines ({n_tok:,} tokens): {t_ref:.1f} s; "
          f"ratio reference/ours (tokenizing) = {t_ref / max(sec['tokenize'], 1e-9):.2f}, reference/ours (whole) = {t_ref / t_ours:.2f}")
    print(f'target {a.target:.0f} s: ratio target/ours = {a.target / t_ours:.2f} ({"met" if t_ours <= a.target else "NOT met"}); '
          f'load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores')

if __name__ == '__main__': main()
