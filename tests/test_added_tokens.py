"A template that adds tokens (issue 13.7): chatml's two tokens grow a pretrained model's embeddings, in full fine-tuning and in QLoRA, and under LoRA their rows (and the terminator's) train and reload exactly."
import json
from types import SimpleNamespace

import pytest, torch


@pytest.fixture(scope='module')
def chatml(tmp_path_factory):
    "A synthetic export prepared with the chatml template and a BPE tokenizer trained here; tiny GPT-2 and Gemma 3 built from configs with that tokenizer's vocabulary, before chatml's tokens."
    from transformers import GPT2Config, GPT2LMHeadModel, Gemma3TextConfig, Gemma3ForCausalLM
    from chatmimic.models import train_demo_tokenizer
    from chatmimic.parse import ParseConfig, parse_main
    from chatmimic.prepare import PrepareConfig, prepare_main
    d, args = tmp_path_factory.mktemp('chatml'), SimpleNamespace(quiet=True)
    parse_main(ParseConfig(out=str(d/'messages.jsonl'), n_messages=600, seed=0), args)
    texts = [json.loads(l).get('text') or '' for l in (d/'messages.jsonl').read_text().splitlines()]
    tok = train_demo_tokenizer(texts, 1000, d/'bpe')
    prepare_main(PrepareConfig(messages=str(d/'messages.jsonl'), out=str(d/'prepared'), tokenizer_full=str(d/'bpe'), tokenizer_qlora=str(d/'bpe'),
                               template='chatml', block_size=128, min_date='', media='keep', max_examples_full=0, max_examples_qlora=0, seed=0), args)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=64, n_layer=2, n_head=2, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id)).save_pretrained(d/'gpt2')
    tok.save_pretrained(d/'gpt2')
    c = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=32, max_position_embeddings=256, sliding_window=64, layer_types=['sliding_attention', 'full_attention'],
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    Gemma3ForCausalLM(c).save_pretrained(d/'gemma'); tok.save_pretrained(d/'gemma')
    return d, len(tok)


def test_dataset_adds_two_tokens(chatml):
    from chatmimic.train import load_prepared
    d, n = chatml
    for kind in ('full', 'qlora'):
        _, stats, tok = load_prepared(d/'prepared'/kind)
        assert len(tok) == n + 2 and stats['template']['name'] == 'chatml'
        assert tok.convert_tokens_to_ids(['<|im_start|>', '<|im_end|>']) == [n, n + 1] and stats['stop_token_id'] == n + 1


def test_full_fine_tuning_resizes(chatml, tmp_path):
    "A pretrained model smaller than the chatml tokenizer: its embeddings grow, the run trains and saves the grown model."
    from chatmimic.train_full import TrainFullConfig, train_full
    from chatmimic.train import load_trained
    d, n = chatml
    m = train_full(TrainFullConfig(model=str(d/'gpt2'), dataset=str(d/'prepared'/'full'), out=str(tmp_path/'run'), learning_rate=1e-3, micro_batch=4,
                                   grad_accum=1, max_steps=2, eval_every=0, save_every=0, progress=False, power_interval=60.0))
    assert m['stop'] == 'done' and m['steps'] == 2
    model, tok, _ = load_trained(tmp_path/'run')
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == n + 2
    base, _, _ = load_trained(tmp_path/'run', 'base')  # the base, grown the same way (seeded): the rows the run started from
    assert base.get_input_embeddings().weight.shape[0] == n + 2
    assert not torch.equal(model.get_input_embeddings().weight[n:], base.get_input_embeddings().weight[n:])  # the new rows trained


@pytest.mark.parametrize('load_in_4bit', [True, False])
def test_lora_trains_the_new_rows(chatml, tmp_path, load_in_4bit):
    "QLoRA (and plain LoRA) on a model without chatml's tokens: the embeddings grow, the two new rows train through trainable_token_indices, and the adapter reloads bit for bit."
    from chatmimic.train_qlora import QLoRAConfig, run_qlora, load_qlora
    from chatmimic.train import load_prepared
    d, n = chatml
    out = tmp_path/'run'
    cfg = QLoRAConfig(model=str(d/'gemma'), dataset=str(d/'prepared'/'qlora'), out=str(out), learning_rate=1e-2, grad_accum=1, micro_batch=2, max_steps=3,
                      val_examples=4, eval_every=0, save_every=0, log_every=1, progress=False, gradient_checkpointing=False, backend='peft', lora_rank=4,
                      load_in_4bit=load_in_4bit, stop_examples=2, max_new_tokens=4, power_interval=60.0)
    model, tok, m = run_qlora(cfg, quiet=True)
    assert m['stop'] == 'done' and len(tok) == n + 2
    info = json.loads((out/'model'/'chatmimic.json').read_text())
    assert info['trainable_tokens'] == [n, n + 1]  # <|im_start|>, <|im_end|> (the terminator)
    plan = json.loads((out/'plan.json').read_text())
    assert plan['trainable_params'] + plan['token_params'] == m['trainable_params']
    base, _, _ = load_qlora(out, 'base')
    assert base.get_input_embeddings().weight.shape[0] == n + 2
    trained = [p for k, p in model.named_parameters() if 'trainable_tokens_delta' in k]
    assert len(trained) == 1 and trained[0].shape == (2, 64)  # one set of rows: the tied output layer shares it
    assert not torch.allclose(trained[0].detach().float().cpu(), base.get_input_embeddings().weight[n:].float().cpu())  # they moved
    x = torch.tensor([load_prepared(d/'prepared'/'qlora')[0]['test'][0]['input_ids']])
    assert ((x == n) | (x == n + 1)).any()
    model.eval()
    with torch.no_grad(): ref = model(input_ids=x).logits
    back, _, _ = load_qlora(out)
    with torch.no_grad(): assert torch.equal(back(input_ids=x).logits, ref)


def test_lora_without_train_tokens_is_refused(chatml, tmp_path):
    "A template that added tokens and train_tokens false: one sentence, before training, nothing written."
    from chatmimic.core import UserError
    from chatmimic.train_qlora import QLoRAConfig, run_qlora
    d, _ = chatml
    cfg = QLoRAConfig(model=str(d/'gemma'), dataset=str(d/'prepared'/'qlora'), out=str(tmp_path/'run'), backend='peft', load_in_4bit=False,
                      train_tokens=False, max_steps=1, progress=False)
    with pytest.raises(UserError, match='set train_tokens true'): run_qlora(cfg, quiet=True)
    assert not (tmp_path/'run').exists()
