"""The ``adaptim`` command line.

    adaptim --version
    adaptim bench [--quick | --full] [--tasks mnist1d,charlm,logreg] [--optimizers adamw,muon] [--seeds N]
                  [--resume] [--heldout [SEED]] [--preset cpu|gpu] [--device cpu|cuda] [--steps N] [--lr X]
                  [--threads N] [--jobs N] [--out DIR] [--no-progress]
    adaptim bench --sweep [--trials N] [--write-tuned] [--seeds N] [...]
    adaptim perf [--size 16M] [--optimizers adamw,sgd] [--threads N] [--device cpu|cuda] [--rounds R]
                 [--scaling] [--low-precision-steps N] [--out DIR]
    adaptim perf --nproc N [--rounds R] [--out DIR]
    adaptim reproduce [NAME ...] [--out DIR] [--quick] [--list] [--doc FILE]
    adaptim list

Each subcommand is a ``_cmd_*`` function taking the parsed arguments and returning the exit status. Task,
optimizer and claim names are case-insensitive; an unknown name exits with status 2 and lists the valid names, and
so does an ``--out`` that cannot hold the output (checked before any training).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _names(text: str) -> list[str]:
    """Comma-separated names, lower-cased: every name of the command line is case-insensitive."""
    return [n.strip().lower() for n in text.split(",") if n.strip()]


def _size(text: str) -> int:
    from adaptim.perf import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``adaptim`` with its subcommands."""
    from adaptim import __version__

    parser = argparse.ArgumentParser(prog="adaptim", description="Adaptive learning methods in PyTorch.")
    parser.add_argument("--version", action="version", version=f"adaptim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser(
        "bench",
        help="train real models on real data with every optimizer, side by side, tuned alike, over seeds",
        description="Run every (task, optimizer) on the report seeds at every horizon with the committed tuned "
        "hyperparameters, and write runs.jsonl (each run as it finishes), results.json, results.md and the figures "
        "to --out; the terminal ends with the ranking and its 95% intervals. With --sweep: the equal-tuning sweep "
        "instead (sweep.json, sweep.md, lr-<optimizer>.png). See docs/bench.md.",
    )
    size = bench.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="fewer seeds and horizons, shorter runs: the CI's smoke run (<= 2 min)"
    )
    size.add_argument("--full", action="store_true", help="every optimizer instead of the default set")
    bench.add_argument(
        "--tasks",
        type=_names,
        default=None,
        help="comma-separated task names (default: the ranked workloads and logreg)",
    )
    bench.add_argument(
        "--optimizers",
        type=_names,
        default=None,
        help="comma-separated optimizer names, each run on the tasks that have it (default: the default set)",
    )
    bench.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        help="report seeds 0..N-1 (default 3); with --sweep, the number of tuning seeds per trial (default 1)",
    )
    bench.add_argument(
        "--resume", action="store_true", help="continue the bench in --out: its finished runs are kept, not re-run"
    )
    bench.add_argument(
        "--preset", type=str.lower, choices=("cpu", "gpu"), default="cpu", help="workload sizes (default: cpu)"
    )
    bench.add_argument(
        "--device", type=str.lower, choices=("cpu", "cuda"), default="cpu", help="where to train (default: cpu)"
    )
    bench.add_argument(
        "--heldout",
        nargs="?",
        type=_nonnegative_int,
        const=0,
        default=None,
        metavar="SEED",
        help="also run each ranked task's held-out variant, one change drawn with SEED (default 0) from the task's "
        "list, with the same hyperparameters, reported separately",
    )
    bench.add_argument("--steps", type=_positive_int, default=None, help="steps of every full-horizon run")
    bench.add_argument(
        "--lr",
        type=_nonnegative_float,
        default=None,
        help="one learning rate for every run, the other hyperparameters the method's defaults (untuned)",
    )
    bench.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch CPU threads per process (default 1; alone, it means one process of that many threads)",
    )
    bench.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        help="worker processes, each running whole runs (default: one per idle core, at most 8; 1 on a GPU)",
    )
    bench.add_argument("--out", default="bench-out", help="output directory (default: bench-out)")
    bench.add_argument(
        "--sweep",
        action="store_true",
        help="run the equal-tuning sweep instead of the bench: the same quasirandom trials for every optimizer",
    )
    bench.add_argument(
        "--trials", type=_positive_int, default=None, help="with --sweep: trials per (task, optimizer) (default 16)"
    )
    bench.add_argument(
        "--write-tuned",
        action="store_true",
        help="with --sweep: write the chosen hyperparameters into the package's tuned.json (to commit)",
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr, with an ETA)")
    bench.set_defaults(func=_cmd_bench, parser=bench)

    perf = sub.add_parser(
        "perf",
        help="time each optimizer's step against torch.optim's forloop / foreach / fused, with memory floors",
        description="Time one step() of every contender, interleaved round by round in one process, next to the "
        "triad bandwidth and each rule's byte floor; write perf.json, perf.md and perf.png to --out "
        "(see docs/perf.md).",
    )
    perf.add_argument("--size", type=_size, default=16_000_000, help="parameter count, e.g. 4M, 20k (default: 16M)")
    perf.add_argument("--optimizers", type=_names, default=None, help="comma-separated rule names (default: all)")
    perf.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: min(2, CPUs))")
    perf.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the tensors live (default: cpu)")
    perf.add_argument("--rounds", type=_positive_int, default=10, help="timed steps per contender (default: 10)")
    perf.add_argument(
        "--scaling", action="store_true", help="also time the elementwise rules at 1M, 4M and 16M parameters"
    )
    perf.add_argument(
        "--low-precision-steps",
        type=_positive_int,
        default=300,
        help="steps of the bfloat16-vs-float32 trajectory runs of the low-precision section (default: 300)",
    )
    perf.add_argument(
        "--nproc",
        type=_positive_int,
        default=None,
        help="instead: owner computes on N local CPU processes (gloo): per-rank Newton-Schulz work, collectives, "
        "bytes and step times of Muon, replicated against sharded (docs/distributed.md)",
    )
    perf.add_argument("--out", default="perf-out", help="output directory (default: perf-out)")
    perf.set_defaults(func=_cmd_perf, parser=perf)

    rep = sub.add_parser(
        "reproduce",
        help="check the notes' quantitative claims with the library's own optimizers",
        description="Run the named claims of the notes (all by default), write claims.json, claims.md and one "
        "PNG per claim with a figure to --out, print a table, and exit 1 if any claim fails (see docs/claims.md).",
    )
    rep.add_argument("names", nargs="*", metavar="NAME", help="claim names (default: every claim; --list lists them)")
    rep.add_argument("--out", default="claims-out", help="output directory (default: claims-out)")
    rep.add_argument(
        "--quick", action="store_true", help="small sizes: every claim in under 3 minutes on 2 CPU cores (CI runs it)"
    )
    rep.add_argument("--list", action="store_true", help="list the claims with their sections and exit")
    rep.add_argument(
        "--doc", default=None, help="also write the Markdown report here, its figure links pointing into --out"
    )
    rep.set_defaults(func=_cmd_reproduce, parser=rep)

    lst = sub.add_parser(
        "list", help="list the bench's tasks and the optimizer names (of adaptim.create_optimizer and the bench)"
    )
    lst.set_defaults(func=_cmd_list, parser=lst)
    return parser


def _check_bench_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from adaptim.bench import TASKS
    from adaptim.bench.runner import optimizer_names

    for kind, names, valid in (("task", args.tasks, TASKS), ("optimizer", args.optimizers, None)):
        if names is None:
            continue
        if valid is None:  # the names the chosen tasks run (a constrained task has its own contenders)
            valid = optimizer_names(args.tasks)
        unknown = [n for n in names if n not in valid]
        if unknown or not names:
            parser.error(
                f"unknown {kind} name(s) {', '.join(unknown) or '(none given)'}; valid {kind}s: {', '.join(valid)}"
            )


def _check_bench_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The bench's options that exclude or need each other, the device, and ``--out`` (before any training)."""
    if args.sweep:
        held = args.heldout is not None
        for flag, given in (("--lr", args.lr is not None), ("--quick", args.quick), ("--heldout", held)):
            if given:
                parser.error(f"{flag} does not apply to --sweep (the sweep tunes every run's hyperparameters)")
    else:
        for flag, given in (("--trials", args.trials is not None), ("--write-tuned", args.write_tuned)):
            if given:
                parser.error(f"{flag} needs --sweep")
    if args.quick and args.seeds is not None:
        parser.error("--seeds does not apply to --quick (it runs its own seeds, horizons and shorter runs)")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no GPU")
    from adaptim.bench.store import RUNS_FILE, RunStore

    try:  # the directory, and an earlier bench's runs there without --resume (nothing is written)
        RunStore(args.out, resume=args.resume, name="sweep-runs.jsonl" if args.sweep else RUNS_FILE)
    except ValueError as exc:
        parser.error(
            str(exc).replace("resume=True (--resume)", "--resume").replace("another out (--out)", "another --out")
        )


def _with_variant(results: dict, held: dict, variant: str) -> dict:
    """``results`` with the runs of ``held`` (a bench of the ``variant`` of some of its tasks) added and
    ``held``'s summary entries added as ``"<task>:<variant>"``: one ``results.json`` whose report shows the
    variants in a section of their own. ``meta`` gains ``variants`` and the summed wall and CPU times."""
    meta = dict(results["meta"])
    meta["variants"] = {**meta.get("variants", {}), variant: list(held["summary"])}
    for key in ("wall_time_s", "cpu_time_s"):
        if meta.get(key) is not None and held["meta"].get(key) is not None:
            meta[key] = round(meta[key] + held["meta"][key], 2)
    summary = {**results["summary"], **{f"{task}:{variant}": entry for task, entry in held["summary"].items()}}
    return {**results, "meta": meta, "runs": [*results["runs"], *held["runs"]], "summary": summary}


def _cmd_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _check_bench_names(parser, args)
    _check_bench_options(parser, args)
    from adaptim.bench import run_sweep, write_results, write_sweep
    from adaptim.bench.report import ranking_text, sweep_text

    common = dict(
        tasks=args.tasks,
        optimizers=args.optimizers,
        full=args.full,
        resume=args.resume,
        out=args.out,
        preset=args.preset,
        device=args.device,
        progress=not args.no_progress,
        steps=args.steps,
        threads=args.threads,
        jobs=args.jobs,
    )
    if args.sweep:
        sweep = run_sweep(trials=args.trials or 16, seeds=args.seeds or 1, **common)
        paths = write_sweep(sweep, args.out)
        if args.write_tuned:
            from adaptim.bench.protocol import write_tuned

            paths.append(write_tuned(sweep))
        print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
        print(sweep_text(sweep), end="")
        return 0
    try:
        results = _bench_with_variants(args, common)
    except KeyboardInterrupt as exc:
        kept = getattr(exc, "kept", None)
        if kept == 0:
            print("\ninterrupted before any run finished: nothing kept", file=sys.stderr)
            return 130
        where = f" in {args.out}/runs.jsonl" if args.out else ""
        print(
            f"\ninterrupted: {'' if kept is None else f'{kept} finished runs kept'}{where}; the same command with "
            "--resume runs only the rest",
            file=sys.stderr,
        )
        return 130
    paths = write_results(results, args.out)
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    print(ranking_text(results), end="")
    return 0


def _bench_with_variants(args: argparse.Namespace, common: dict) -> dict:
    from adaptim.bench import run_bench

    results = run_bench(seeds=args.seeds or 3, quick=args.quick, lr=args.lr, **common)
    if args.heldout is not None:
        variant = "heldout" if args.heldout == 0 else f"heldout-{args.heldout}"
        ranked = [task for task, entry in results["summary"].items() if entry["ranked"]]
        if ranked:  # the same seeds and hyperparameters; its runs join runs.jsonl (other keys: the variant)
            held = run_bench(
                seeds=args.seeds or 3,
                quick=args.quick,
                lr=args.lr,
                variant=variant,
                **{**common, "tasks": ranked, "resume": True},
            )
            results = _with_variant(results, held, variant)
    return results


def _cmd_perf_distributed(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``adaptim perf --nproc N``: :func:`adaptim.distributed.measure.measure`, printed as a table and written to
    ``--out``/distributed.json."""
    import math

    from adaptim.bench.store import write_json_atomic
    from adaptim.distributed.measure import SHAPES, measure

    if args.nproc < 2:
        parser.error("--nproc must be >= 2 (one process has nothing to share)")
    _writable_dir(parser, "--out", args.out)
    ranks = measure(args.nproc, args.rounds)
    result = {"parameters": sum(math.prod(s) for s in SHAPES), "matrices": len(SHAPES), "ranks": ranks}
    print(
        f"Muon on {result['matrices']} matrices ({result['parameters']:,} float32 entries), {args.nproc} processes "
        f"(gloo), median of {args.rounds} steps; load average {os.getloadavg()[0]:.2f}"
    )
    print("| rank | mode | Newton-Schulz matrices | collectives | bytes sent | state MiB | step ms |")
    print("| ---: | --- | ---: | --- | ---: | ---: | ---: |")
    for r in ranks:
        for mode in ("replicated", "sharded"):
            m = r[mode]
            comm = m.get("comm") or {}
            colls = ", ".join(f"{v} {k}" for k, v in comm.items() if k.endswith(("gather", "reduce")) and v) or "-"
            sent = comm.get("bytes_sent", "-")
            print(
                f"| {r['rank']} | {mode} | {m['ns_matrices_per_step']} | {colls} | {sent} | {m['state_mib']:.2f} "
                f"| {m['median_step_ms']:.1f} |"
            )
    os.makedirs(args.out, exist_ok=True)
    path = write_json_atomic(os.path.join(args.out, "distributed.json"), result)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_perf(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.nproc is not None:
        return _cmd_perf_distributed(args, parser)
    from adaptim.perf import KEYS, run_perf, write_perf
    from adaptim.perf.report import perf_markdown
    from adaptim.perf.runner import SCALING_SIZES

    if args.optimizers is not None:
        unknown = [n for n in args.optimizers if n not in KEYS]
        if unknown or not args.optimizers:
            parser.error(f"unknown optimizer name(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(KEYS)}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no GPU")
    results = run_perf(
        size=args.size,
        optimizers=args.optimizers,
        threads=args.threads,
        device=args.device,
        rounds=args.rounds,
        scaling_sizes=SCALING_SIZES if args.scaling else None,
        low_precision_steps=args.low_precision_steps,
    )
    paths = write_perf(results, args.out)
    print(perf_markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def _writable_dir(parser: argparse.ArgumentParser, option: str, path: str) -> None:
    """Exit 2 unless ``path`` is a directory or can be created as one (checked before any work)."""
    p = os.path.abspath(path)
    while not os.path.exists(p):  # the nearest existing ancestor must be a writable directory
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        parser.error(f"{option} {path!r}: {p!r} exists and is not a directory")
    if not os.access(p, os.W_OK):
        parser.error(f"{option} {path!r}: {p!r} is not writable")


def _cmd_reproduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from adaptim.claims import all_claims, run_claims, write_claims

    claims = all_claims()
    names = list(dict.fromkeys(n.strip().lower() for n in args.names))  # case-insensitive, each claim once
    unknown = [n for n in names if n not in claims]
    if unknown:
        parser.error(f"unknown claim name(s) {', '.join(unknown)}; claims: {', '.join(claims)}")
    if args.list:
        for claim in [claims[n] for n in names] or claims.values():
            print(f"{claim.name:<32} {claim.section:<28} {claim.statement}")
        return 0
    out = args.out
    _writable_dir(parser, "--out", out)
    if args.doc is not None:
        if os.path.isdir(args.doc):
            parser.error(f"--doc {args.doc!r} is a directory; name the Markdown file to write")
        _writable_dir(parser, "--doc", os.path.dirname(os.path.abspath(args.doc)))

    def show(r) -> None:
        status = "pass" if r.passed else "FAIL"
        passed = sum(c.passed for c in r.checks)
        detail = f"  {r.error}" if r.error else ""
        print(f"{status}  {r.name:<32} {passed:>3}/{len(r.checks):<3} checks {r.seconds:7.2f} s{detail}", flush=True)

    import time

    start = time.perf_counter()
    results = run_claims(names or None, quick=args.quick, out=out, progress=show)
    paths = write_claims(results, out, quick=args.quick, doc=args.doc)
    failed = [r.name for r in results if not r.passed]
    total = time.perf_counter() - start
    print(
        f"{len(results) - len(failed)}/{len(results)} claims passed in {total:.1f} s (figures included)"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 1 if failed else 0


def _cmd_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from adaptim.bench import OPTIMIZERS, TASKS
    from adaptim.bench.tasks import DEFAULT_TASKS, make_task

    print("tasks:")
    for name, cls in TASKS.items():
        default = "" if name in DEFAULT_TASKS else "; not in the default run: --tasks " + name
        print(f"  {name:<22} {cls.description} ({cls.steps} steps{default})")
    from adaptim.optim.factory import NAMED_OPTIMIZERS

    # the names adaptim.create_optimizer takes, then any entry registered with the bench alone
    print("optimizers (bench learning rate per task):")
    for name in [*NAMED_OPTIMIZERS, *(n for n in OPTIMIZERS if n not in NAMED_OPTIMIZERS)]:
        spec = OPTIMIZERS.get(name)
        description = spec.description if spec is not None else NAMED_OPTIMIZERS[name].description
        lrs = ", ".join(f"{t} {lr:.3g}" for t, lr in spec.lrs.items()) if spec is not None else "not in the bench"
        print(f"  {name:<22} {description}; lr: {lrs}")
    for name in TASKS:  # a constrained task runs its own contenders instead of the registry's
        own = make_task(name).contenders()
        if own is not None:
            print(f"contenders of {name} (bench learning rate):")
            for spec in own:
                print(f"  {spec.name:<22} {spec.description}; lr: {spec.lr_for(name):.3g}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``adaptim`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args, args.parser)
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
