#!/usr/bin/env python3
"""Rebuilds this folder from the shared data snapshot (default /work/shared/data).

Every subset is chosen deterministically: rows are ranked by SHA-256 of their normalised key text
(lower case, whitespace collapsed) and the N lowest-ranked rows are kept, written in source order.
Not used at build or run time; it documents (and reproduces) how the shipped files were made.
"""
import csv, gzip, hashlib, json, os, re, shutil, sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
DST = os.path.dirname(os.path.abspath(__file__))


def rank(text):
    norm = re.sub(r"\s+", " ", text.strip().lower())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def pick(rows, key, n):
    """The n rows with the lowest hash of key(row), in their original order."""
    chosen = set(sorted(range(len(rows)), key=lambda i: rank(key(rows[i])))[:n])
    return [r for i, r in enumerate(rows) if i in chosen]


def out(dataset, name):
    os.makedirs(os.path.join(DST, dataset), exist_ok=True)
    return os.path.join(DST, dataset, name)


def copy(dataset, *names):
    for name in names:
        shutil.copyfile(os.path.join(SRC, dataset, name), out(dataset, name))


def lines(dataset, name):
    with open(os.path.join(SRC, dataset, name), encoding="utf-8", newline="") as f:
        return f.read().splitlines(keepends=True)


def write_lines(dataset, name, rows):
    with open(out(dataset, name), "w", encoding="utf-8", newline="") as f:
        f.writelines(rows)


def write_jsonl(dataset, name, rows):
    with open(out(dataset, name), "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


# Whole files (small).
copy("advbench", "harmful_behaviors.csv", "LICENSE")
copy("jailbreakbench", "jbb_harmful_behaviors.csv", "LICENSE")
copy("beavertails_30k_train_unsafe_subset", "beavertails_30k_train_unsafe_200.jsonl")
copy("xstest", "xstest_prompts.csv", "LICENSE")
copy("self_instruct", "user_oriented_instructions.jsonl", "seed_tasks.jsonl", "LICENSE")
copy("gcg_refusal_prefixes", "test_prefixes.json", "test_prefixes_variants.json")
copy("harmbench", "harmbench_behaviors_text_all.csv", "LICENSE")
copy("sst2", "dev.tsv")
copy("gsm8k", "LICENSE")
copy("hh_rlhf_harmless_base", "LICENSE")
copy("ag_news", "classes.txt", "readme.txt")

# HarmBench classifier validation set: all entries, only the fields a judge check needs.
with open(os.path.join(SRC, "harmbench", "text_behaviors_val_set.json"), encoding="utf-8") as f:
    val = json.load(f)
keep = ["behavior_id", "test_case", "generation", "model", "method", "human_0", "human_1", "human_2"]
val = {bid: [{k: e[k] for k in keep if k in e} for e in entries] for bid, entries in val.items()}
with open(out("harmbench", "text_behaviors_val_set.json"), "w", encoding="utf-8") as f:
    json.dump(val, f, ensure_ascii=False, indent=1)

# Safety-tuned LLaMAs: 1,000 of the refusals with output <= 600 characters (short replies suit small models).
with open(os.path.join(SRC, "safety_tuned_llamas_refusals", "safety_only_data_Instructions.json"), encoding="utf-8") as f:
    stl = json.load(f)
stl = pick([r for r in stl if len(r["output"]) <= 600], lambda r: r["instruction"], 1000)
with open(out("safety_tuned_llamas_refusals", "safety_only_data_Instructions.json"), "w", encoding="utf-8") as f:
    json.dump(stl, f, ensure_ascii=False, indent=1)

# Dolly: rows whose instruction + context + response is at most 1,500 characters.
dolly = [json.loads(l) for l in lines("dolly_subset", "databricks-dolly-15k-safety-only.jsonl")]
write_jsonl("dolly_subset", "databricks-dolly-15k-safety-only.jsonl",
            [r for r in dolly if len(r["instruction"]) + len(r["context"]) + len(r["response"]) <= 1500])

# GSM8K: 600 train rows by hash of the question; the first 300 test rows (the literature uses a test prefix).
gsm_train = lines("gsm8k", "train.jsonl")
write_lines("gsm8k", "train.jsonl", pick(gsm_train, lambda l: json.loads(l)["question"], 600))
write_lines("gsm8k", "test.jsonl", lines("gsm8k", "test.jsonl")[:300])

# SST-2: header + 4,000 train rows by hash of the sentence; dev is whole. train_extra.tsv holds the next 16,000 by
# the same ranking (disjoint from train.tsv), for the bootstrap corpus only: the harm classifier's corpus and the
# safety benchmark keep drawing from train.tsv, so their samples (and the shipped judge) do not change.
sst = lines("sst2", "train.tsv")
ranked = sorted(range(1, len(sst)), key=lambda i: rank(sst[i].split("\t")[0]))
write_lines("sst2", "train.tsv", [sst[0]] + [sst[i] for i in sorted(ranked[:4000])])
write_lines("sst2", "train_extra.tsv", [sst[0]] + [sst[i] for i in sorted(ranked[4000:20000])])

# AG News: 1,000 rows of the train-derived subset by hash; the first 1,000 test rows.
write_lines("ag_news", "train_subset_alps10k.tsv", pick(lines("ag_news", "train_subset_alps10k.tsv"), lambda l: l.split("\t")[0], 1000))
write_lines("ag_news", "test.csv", lines("ag_news", "test.csv")[:1000])

# HH-RLHF harmless-base test: 400 dialogues by hash of the chosen dialogue, uncompressed.
with gzip.open(os.path.join(SRC, "hh_rlhf_harmless_base", "test.jsonl.gz"), "rt", encoding="utf-8") as f:
    hh = f.read().splitlines(keepends=True)
write_lines("hh_rlhf_harmless_base", "test.jsonl", pick(hh, lambda l: json.loads(l)["chosen"], 400))
