#!/usr/bin/env python3
"""Score JSON Lines with the reference Python packages, for comparison with `gm score`.

Requires sacrebleu 2.6.0 and rouge-score 0.1.2 (`pip install sacrebleu==2.6.0 rouge-score==0.1.2`).

Sub-commands:

  generate  write N deterministic prediction/reference pairs (`--style adversarial` mixes in
            the characters that tokenizers disagree on: entities, odd whitespace, non-ASCII)
  score     score a file exactly as `gm score` does, writing the same output shape
  compare   check that two score files agree within a tolerance

Example:

  python3 benches/reference/score_reference.py generate --n 100000 --seed 1 --output pairs.jsonl
  python3 benches/reference/score_reference.py score --input pairs.jsonl \
      --metrics bleu,chrf,rouge1,rouge2,rougeL,squad_f1 --output reference.jsonl
  gm score --input pairs.jsonl --metrics bleu,chrf,rouge1,rouge2,rougeL,squad_f1 --output gm.jsonl
  python3 benches/reference/score_reference.py compare reference.jsonl gm.jsonl
"""

import argparse
import collections
import json
import random
import re
import string
import sys
import time

WORDS = (
    "the a an of to and in is was for on that with as by at from it be this are or "
    "model answer question cat sat mat dog barked running runs ran generously happily "
    "photosynthesis converts sunlight water carbon dioxide glucose oxygen algorithm "
    "time average memory safety garbage collector install configure run tests pass "
    "failed relational conditional national rationalization hopeful goodness effective "
    "city river mountain capital Paris London Tokyo Rust Python value values computed "
    "skies dying lying tying innings outings news proceeding exceeded succeeded"
).split()
PUNCT = [".", ",", "!", "?", ";", ":", "'s", "(", ")", '"', "-", "--", "/", "%", "$"]
ODD = [
    "&amp;", "&lt;", "&gt;", "&quot;", "<skipped>", "-\n", "\n", "\t", "\u00a0", "\u3000",
    "\u001c", "\u0085", "\u2028", "café", "naïve", "İstanbul", "\u212a", "Straße", "ΣΊΣΥΦΟΣ",
    "東京", "😀", "3.14", "1,000", "5-6", "-7", "e-mail", "U.S.A.", "a.b,c", "x\u0301",
    "\u00e9a", "_a_", "an", "The", "THE",
]


def sentence(rng, style):
    n = rng.randint(0, 30) if rng.random() < 0.05 else rng.randint(3, 30)
    parts = []
    for _ in range(n):
        r = rng.random()
        if style == "adversarial" and r < 0.2:
            parts.append(rng.choice(ODD))
        elif r < 0.08:
            parts.append(str(rng.randint(0, 5000)))
        elif r < 0.18:
            parts.append(rng.choice(PUNCT))
        else:
            w = rng.choice(WORDS)
            parts.append(w.capitalize() if rng.random() < 0.1 else w)
    sep = "" if style == "adversarial" and rng.random() < 0.1 else " "
    text = sep.join(parts)
    if rng.random() < 0.5:
        text += "."
    if rng.random() < 0.1:
        text += "\n" + sentence(rng, "plain")
    return text


def perturb(rng, text):
    words = text.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < 0.1:
            continue
        if r < 0.2:
            out.append(rng.choice(WORDS))
        elif r < 0.25:
            out.append(w)
            out.append(w)
        else:
            out.append(w)
    if rng.random() < 0.2:
        rng.shuffle(out)
    return " ".join(out)


def generate(args):
    rng = random.Random(args.seed)
    with open(args.output, "w", encoding="utf-8") as f:
        for i in range(args.n):
            ref = sentence(rng, args.style)
            refs = [ref]
            for _ in range(rng.choice([0, 0, 0, 1, 2])):
                refs.append(perturb(rng, ref) if rng.random() < 0.7 else sentence(rng, args.style))
            r = rng.random()
            if r < 0.05:
                pred = ref
            elif r < 0.1:
                pred = sentence(rng, args.style)
            else:
                pred = perturb(rng, ref)
            line = {"id": f"case-{i:07d}", "prediction": pred, "references": refs}
            f.write(json.dumps(line, ensure_ascii=rng.random() < 0.5) + "\n")


# The SQuAD v1.1 / v2.0 evaluation logic.
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_em(pred, gold):
    return float(normalize_answer(pred) == normalize_answer(gold))


def squad_f1(pred, gold):
    pred_toks = normalize_answer(pred).split()
    gold_toks = normalize_answer(gold).split()
    if len(pred_toks) == 0 or len(gold_toks) == 0:
        return float(pred_toks == gold_toks)
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def score(args):
    from sacrebleu.metrics import BLEU, CHRF
    from rouge_score import rouge_scorer

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    known = {"bleu", "chrf", "squad_em", "squad_f1", *ROUGE_TYPES}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        sys.exit(f"unknown metrics {unknown}; this helper knows {sorted(known)}")
    rouge_types = [m for m in metrics if m in ROUGE_TYPES]
    bleu = BLEU(effective_order=True)
    chrf = CHRF()
    scorer = rouge_scorer.RougeScorer(rouge_types, use_stemmer=args.rouge_stemmer) if rouge_types else None

    start = time.perf_counter()
    hyps, refs_all = [], []
    with open(args.input, encoding="utf-8") as f, open(args.output, "w", encoding="utf-8") as out:
        for line in f:
            if not line.strip():
                continue
            case = json.loads(line)
            pred = case["prediction"]
            refs = case["references"] if "references" in case else [case["reference"]]
            scores = {}
            rouge = scorer.score_multi(refs, pred) if scorer else {}
            for m in metrics:
                if m == "bleu":
                    scores[m] = bleu.sentence_score(pred, refs).score / 100
                elif m == "chrf":
                    scores[m] = chrf.sentence_score(pred, refs).score / 100
                elif m == "squad_em":
                    scores[m] = max(squad_em(pred, r) for r in refs)
                elif m == "squad_f1":
                    scores[m] = max(squad_f1(pred, r) for r in refs)
                else:
                    scores[m] = rouge[m].fmeasure
            out.write(json.dumps({"id": case["id"], "scores": scores}) + "\n")
            if args.corpus:
                hyps.append(pred)
                refs_all.append(refs)
    if args.corpus:
        width = max(len(r) for r in refs_all)
        streams = [[r[i] if i < len(r) else None for r in refs_all] for i in range(width)]
        corpus_bleu = BLEU()
        b = corpus_bleu.corpus_score(hyps, streams)
        c = CHRF().corpus_score(hyps, streams)
        with open(args.corpus, "w", encoding="utf-8") as f:
            json.dump(
                {"bleu": b.score / 100, "chrf": c.score / 100,
                 "bleu_signature": str(corpus_bleu.get_signature())},
                f,
            )
    elapsed = time.perf_counter() - start
    print(f"scored in {elapsed:.2f} s", file=sys.stderr)


def compare(args):
    worst, checked, bad = 0.0, 0, 0
    with open(args.a, encoding="utf-8") as fa, open(args.b, encoding="utf-8") as fb:
        for n, (la, lb) in enumerate(zip(fa, fb), 1):
            a, b = json.loads(la), json.loads(lb)
            if a["id"] != b["id"] or list(a["scores"]) != list(b["scores"]):
                sys.exit(f"line {n}: ids or metric keys differ: {a} vs {b}")
            for k, va in a["scores"].items():
                d = abs(va - b["scores"][k])
                checked += 1
                worst = max(worst, d)
                if d > args.tolerance:
                    bad += 1
                    if bad <= 20:
                        print(f"line {n} {a['id']} {k}: {va} vs {b['scores'][k]}")
        if fa.readline() or fb.readline():
            sys.exit("the files have different numbers of lines")
    print(f"{checked} values compared, {bad} differ by more than {args.tolerance}, largest difference {worst:.3g}")
    sys.exit(1 if bad else 0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--n", type=int, default=100_000)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--style", choices=["plain", "adversarial"], default="plain")
    g.add_argument("--output", required=True)
    s = sub.add_parser("score")
    s.add_argument("--input", required=True)
    s.add_argument("--metrics", default="bleu,chrf,squad_em,squad_f1,rouge1,rouge2,rougeL,rougeLsum")
    s.add_argument("--rouge-stemmer", action="store_true")
    s.add_argument("--corpus")
    s.add_argument("--output", required=True)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--tolerance", type=float, default=1e-6)
    args = p.parse_args()
    {"generate": generate, "score": score, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()
