"Masks that hold (issue 13.6): packed logits equal unpacked ones under SDPA, eager attention ignores the boolean masks, and a run refuses an attention implementation or backend under which its masks would not be exact."
from pathlib import Path

import pytest, torch

from chatmimic.core import UserError
from chatmimic.train import PackedCollator, attention_guard, demo_dataset, load_prepared, packing_error, train, TrainConfig


@pytest.fixture(scope='module')
def ds():
    return demo_dataset(block_size=256)


def gpt2(vocab, impl):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    c = GPT2Config(vocab_size=vocab, n_positions=256, n_embd=64, n_layer=2, n_head=4, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                   bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel._from_config(c, attn_implementation=impl).eval()


def gemma3(vocab, impl):
    "A Gemma 3 from a config: a sliding-window layer (window 16, shorter than the examples) and a full-attention one."
    from transformers import Gemma3TextConfig, Gemma3ForCausalLM
    torch.manual_seed(0)
    c = Gemma3TextConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=32, max_position_embeddings=512, sliding_window=16, layer_types=['sliding_attention', 'full_attention'],
                         pad_token_id=0, bos_token_id=2, eos_token_id=1)
    return Gemma3ForCausalLM._from_config(c, attn_implementation=impl).eval()


def examples(ds, sizes=(40, 70, 100, 30)):
    d = load_prepared(ds)[0]['train']
    return [d[i]['input_ids'][:n] for i, n in enumerate(sizes)], [min(d[i]['prompt_len'], n // 2) for i, n in enumerate(sizes)]


@pytest.mark.parametrize('build', [gpt2, gemma3])
@pytest.mark.parametrize('prefix', [False, True])
def test_sdpa_packed_equals_unpacked(ds, build, prefix):
    "Under SDPA every example's logits in a packed, padded row equal its logits alone (the prefix mask too), and the guard lets the run go."
    _, _, tok = load_prepared(ds)
    m = build(len(tok), 'sdpa')
    assert m.config._attn_implementation == 'sdpa'
    ex, P = examples(ds)
    e = packing_error(m, ex, P, tok.pad_token_id, prefix)
    assert e['examples'] == 4 and e['tokens'] == 240
    assert e['max_abs_diff'] < 1e-5 * max(1.0, e['max_abs_logit']), e
    attention_guard(m, pack=True, mask='prefix' if prefix else 'causal')


@pytest.mark.parametrize('build', [gpt2, gemma3])
def test_eager_ignores_boolean_masks_and_is_refused(ds, build):
    "Eager attention adds a boolean mask to the scores: packed examples see each other; the guard refuses it with one sentence, unless one causal example per row needs no such mask."
    _, _, tok = load_prepared(ds)
    m = build(len(tok), 'eager')
    ex, P = examples(ds)
    e = packing_error(m, ex, P, tok.pad_token_id)
    assert e['max_abs_diff'] > 1e-2, e  # what the guard protects against, measured
    for pack, mask in ((True, 'causal'), (False, 'prefix'), (True, 'prefix')):
        with pytest.raises(UserError, match="attention implementation 'eager' does not honour the boolean masks") as err:
            attention_guard(m, pack=pack, mask=mask)
        assert len(str(err.value).splitlines()) == 1 and "attn_implementation='sdpa'" in str(err.value)
    attention_guard(m, pack=False, mask='causal')
    b = PackedCollator(tok.pad_token_id, None, masks=False)([dict(input_ids=x, labels=x, lengths=[len(x)], prompt_lens=[p]) for x, p in zip(ex, P)])
    assert b['attention_mask'].dim() == 2  # a padding mask, which eager honours: right padding after one causal example is exact
    with torch.no_grad():
        lp = m(input_ids=b['input_ids'], attention_mask=b['attention_mask'], position_ids=b['position_ids']).logits
        for j, x in enumerate(ex):
            assert (lp[j, :len(x)] - m(input_ids=torch.tensor([x])).logits[0]).abs().max() < 1e-4


def test_unsloth_refuses_packing_and_the_prefix_mask(ds):
    "unsloth takes no custom mask: packing or the prefix mask is refused, whatever the attention implementation says."
    _, _, tok = load_prepared(ds)
    m = gpt2(len(tok), 'sdpa')
    for pack, mask in ((True, 'causal'), (False, 'prefix')):
        with pytest.raises(UserError, match='backend unsloth takes no custom attention mask'): attention_guard(m, pack, mask, backend='unsloth')
    attention_guard(m, False, 'causal', backend='unsloth')
    from chatmimic.qlora_plan import select_backend
    if not torch.cuda.is_available(): pytest.skip('select_backend picks unsloth only on a GPU')
    with pytest.raises(UserError, match='unsloth'): select_backend('unsloth', True, pack=True)


def test_train_refuses_eager_before_writing(ds, tmp_path):
    "train() refuses a packed run on an eager model before the run folder exists; the same model trains with pack false."
    dsd, stats, tok = load_prepared(ds)
    m = gpt2(len(tok), 'eager').train()
    small = {k: v.select(range(8)) for k, v in dsd.items()}
    cfg = TrainConfig(dataset=str(ds), out=str(tmp_path/'run'), model='gpt2-tiny', micro_batch=4, grad_accum=1, max_steps=1, eval_every=0,
                      save_every=0, log_every=1, progress=False, block_size=256, power_interval=60.0)
    with pytest.raises(UserError, match="attention implementation 'eager'"): train(m, tok, small, stats, cfg, dict(kind='full', model='gpt2-tiny'))
    assert not Path(cfg.out).exists()
    from dataclasses import replace
    r = train(m, tok, small, stats, replace(cfg, pack=False), dict(kind='full', model='gpt2-tiny'))
    assert r['stop'] == 'done' and r['steps'] == 1
