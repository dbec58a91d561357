"""Evaluate shipped checkpoints and write the results tables (checkpoints/RESULTS.md)."""

from __future__ import annotations

from sleepcore.checkpoint import available, load_checkpoint
from sleepcore.evaluate import evaluate, sample_eval
from sleepcore.tasks import get_task


def evaluate_checkpoint(
    name, passes: int | None = None, per_depth: int = 250, seed: int = 777, progress: bool = False
) -> dict:
    from tqdm import tqdm

    model, info = load_checkpoint(name)
    task = get_task(info["task"]["name"], **info["task"]["params"])
    examples = sample_eval(task, per_depth, seed)
    with tqdm(total=len(examples), disable=not progress, desc=f"eval {name}", leave=False) as bar:
        res = evaluate(model, task, examples, passes=passes, progress=bar.update)
    return {
        "checkpoint": str(name),
        "passes": passes or info["sleep"]["passes"],
        "trained_passes": info["sleep"]["passes"],
        "variant": info.get("variant", "hybrid"),
        "train_seed": info["train"]["seed"],
        "data_seed": info["train"]["data_seed"],
        "task": info["task"]["name"],
        "preset": info.get("preset") or info["task"]["name"],
        "per_depth": per_depth,
        "seed": seed,
        "chance": {str(d): task.chance(d) for d in sorted(set(task.depths) | set(res.answers))},
        **res.as_dict(),
        **(
            {"effective_name": task.effective_depth_name, "effective_about": task.effective_depth_about}
            if task.effective_depth_name
            else {}
        ),
        **({"first_about": task.first_answer_about} if task.first_answer_about else {}),
    }


def results_markdown(per_depth: int = 1000, seed: int = 777) -> str:
    """The results tables of every shipped checkpoint, one section per preset (its task and depths)."""
    rows: dict[str, list[dict]] = {}
    for name in available():
        res = evaluate_checkpoint(name, per_depth=per_depth, seed=seed, progress=True)
        rows.setdefault(res["preset"], []).append(res)
    out = [
        "# Results",
        "",
        f"Written by `sleepcore eval --all --examples {per_depth} --seed {seed} --markdown checkpoints/RESULTS.md`.",
        f"Every cell: accuracy on held-out (test split) examples, {per_depth} sequences per depth, with its 95% Wilson",
        "interval. Models of one task that differ in N were trained on the same data in the same order for the same",
        "number of optimizer steps.",
    ]
    variants = {r["variant"] for results in rows.values() for r in results}
    if variants & {"attn-only", "full-attention"}:
        out += [
            "The attention-only model under eviction must sit at chance (the eviction is real) and the",
            "full-attention model, which never evicts, is an upper reference: sanity checks, not competitors.",
        ]
    if "wide" in variants:
        out += [
            "The wide model (N = 1 with a 4× wider MLP) is the capacity control: it tells what more sleep passes buy",
            "from what more parameters buy.",
        ]
    replicas = [r for results in rows.values() for r in results if r.get("train_seed", 0) != 0]
    if replicas:
        out += [
            "Replicas trained again with another initialisation and data seed (the models of one task that differ",
            "in N share those seeds too): "
            + ", ".join(f"{r['checkpoint']} (seed {r['train_seed']}, data seed {r['data_seed']})" for r in replicas)
            + ".",
        ]
    missing = sorted({"attn-only", "full-attention", "wide"} - variants)
    if missing:
        out += ["", f"Not shipped yet: the {', '.join(missing)} baseline(s) (`sleepcore train --variant ...`)."]
    for preset, results in rows.items():
        task = f"{preset} ({results[0]['task']})" if preset != results[0]["task"] else preset
        results.sort(key=lambda r: (r["variant"] != "hybrid", r["variant"], r["passes"]))
        depths = list(results[0]["answers"])
        for metric, label in (("answers", "accuracy per answer"), ("exact", "exact (whole sequence right)")):
            if not any(r[metric] for r in results):
                continue
            out += _section(f"## {task}: {label}", [], results, metric, depths, [f"depth {d}" for d in depths])
            if metric == "answers":
                out.append("| chance | | | " + " | ".join(f"{results[0]['chance'][d]:.2f}" for d in depths) + " |")
        if any(r.get("effective") for r in results):  # tasks whose depth can overstate (Depo where k wraps; gsm)
            out += _effective_table(task, results)
        if results[0].get("first_about"):  # tasks whose later answers can lean on earlier ones (Depo)
            out += _first_table(task, results, depths)
    return "\n".join(out) + "\n"


def _first_table(task: str, results: list[dict], depths: list[str]) -> list[str]:
    """Accuracy on the first answer of each sequence alone, by its depth."""
    intro = [f"Only {results[0]['first_about']}. One answer per sequence, so each cell has fewer answers than above."]
    heading = f"## {task}: the first answer of each sequence alone"
    return _section(heading, intro, results, "first", depths, [f"depth {d}" for d in depths])


def _effective_table(task: str, results: list[dict]) -> list[str]:
    """Accuracy per answer by the depth it really needs (Depo: k mod n; gsm: the question alone)."""
    name = next(r["effective_name"] for r in results if r.get("effective"))
    about = next(r.get("effective_about", name) for r in results if r.get("effective"))
    depths = sorted({int(d) for r in results for d in r.get("effective", {})})
    intro = [
        f"The same answers as above, by the depth they really need: {about}.",
        "A cell's number of answers varies; see each interval.",
    ]
    heading = f"## {task}: accuracy per answer by {name}"
    return _section(heading, intro, results, "effective", [str(d) for d in depths], [str(d) for d in depths])


def _section(heading: str, intro: list[str], results: list[dict], key: str, columns: list[str], labels) -> list[str]:
    """A results section: heading, optional intro lines, and one row per checkpoint of results[r][key][column]."""
    out = ["", heading, ""] + (intro + [""] if intro else [])
    out += ["| checkpoint | variant | N | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    for r in results:
        cells = [_cell(r.get(key, {}).get(c)) for c in columns]
        out.append(f"| {r['checkpoint']} | {r['variant']} | {r['passes']} | " + " | ".join(cells) + " |")
    return out


def _cell(c: dict | None) -> str:
    return "—" if not c else f"{c['acc']:.3f} [{c['lo']:.2f}, {c['hi']:.2f}]"
