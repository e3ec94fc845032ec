"""`pilah`: one verb per job. A thin layer over the library; every number is computed there.

Each verb imports what it needs when it runs, so `pilah predict` never loads TensorFlow and the default install
(ONNX Runtime, no Keras) runs every verb that serves the bundled model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pilah import __version__, guidance, interrupts
from pilah.config import Config
from pilah.errors import PilahError, UsageError
from pilah.images import DEFAULT_MAX_PIXELS
from pilah.progress import Progress

EXIT_OK, EXIT_INTERRUPTED = 0, 130
EXIT_NOTHING_CLASSIFIED = 3  # pilah predict: no image found, or every input failed (each has its error row)
# Streamlit's own cap on an upload, far above the app's limit (`pilah.images.DEFAULT_MAX_UPLOAD_MB`): between
# the two, the app answers in the chosen language; Streamlit's refusal is English only. .streamlit/config.toml
# agrees.
STREAMLIT_MAX_UPLOAD_MB = 200
MODEL_HELP = "model file: .keras, .onnx or .tflite (default: the bundled int8 ONNX model)"
TRAIN_EXTRA = {"keras", "tensorflow", "matplotlib", "onnx", "tf2onnx"}  # not in the default install


def load_config(args: argparse.Namespace) -> Config:
    config = Config.load(args.config) if getattr(args, "config", None) else Config()
    overrides = list(getattr(args, "set", None) or [])
    for flag, key in (
        ("seed", "data.seed"),
        ("strategy", "data.split_strategy"),
        ("refit", "data.refit_fraction"),
        ("weights", "model.weights"),
        ("epochs", "train.epochs"),
        ("batch_size", "train.batch_size"),
        ("lr", "train.learning_rate"),
        ("image_size", "data.image_size"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "all_corrections", False):
        overrides.append("data.corrections=all")
    return config.override(overrides)


def cmd_config(args: argparse.Namespace) -> int:
    print(load_config(args).to_yaml(), end="")
    return EXIT_OK


def cmd_data_scan(args: argparse.Namespace) -> int:
    from pilah.data.scan import scan
    from pilah.data.split import write_groups, write_rejected

    config = load_config(args)
    folders = _data_folders(args)
    result = scan(folders, config.data, workers=args.workers, progress=Progress("scanning"))
    counts = result.class_counts()
    print(f"\n{len(result.images):,} images in {len(result.classes)} classes under {', '.join(map(str, folders))}")
    _print_folder_counts(folders, result.folder_counts())
    print(_format_table(["class", "images"], [[c, f"{n:,}"] for c, n in counts.items()]))
    copies = result.duplicates()
    rule = f"pHash distance <= {config.data.near_duplicate_distance}, colour difference <= "
    rule += f"{config.data.near_duplicate_color_difference:g}"
    print(
        f"\nduplicates: {copies.distinct:,} distinct files by content; "
        f"{copies.exact_groups} groups of exact copies ({copies.exact_files} files), "
        f"{copies.near_groups} groups with near copies ({copies.near_files} files; {rule}); "
        f"{copies.cross_class_groups} groups span two classes"
    )
    print(f"rejected: {len(result.rejected)} files")
    for f in result.rejected:
        print(f"  {f.path}: {f.error}: {f.message}")
    if args.out:
        from pilah.data.charts import class_distribution

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_rejected(result.rejected, out / "rejected.csv")
        write_groups(result.groups, result.group_of(), out / "duplicates.csv")
        table = {c: {"all": n} for c, n in counts.items()}
        class_distribution(table, out / "class_distribution.png", f"Images per class ({', '.join(map(str, folders))})")
        print(f"wrote rejected.csv, duplicates.csv, class_distribution.png to {out}")
    return EXIT_OK


def cmd_data_split(args: argparse.Namespace) -> int:
    from pilah.data import split as splitting
    from pilah.data.charts import class_distribution
    from pilah.data.scan import scan

    config = load_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folders = _data_folders(args)
    result = scan(folders, config.data, workers=args.workers, progress=Progress("scanning"))
    rows = splitting.split(result, config.data)
    table = splitting.distribution(rows, result.classes)
    splitting.write_manifest(rows, out / "manifest.csv")
    splitting.write_distribution(table, out / "class_distribution.csv")
    splitting.write_rejected(result.rejected, out / "rejected.csv")
    splitting.write_groups(result.groups, result.group_of(), out / "duplicates.csv")
    class_distribution(table, out / "plots" / "class_distribution.png", "Images per class and split")
    header = ["class", "train", "val", "test", "all"]
    body = [[c, *(f"{row[k]:,}" for k in header[1:])] for c, row in table.items()]
    body.append(["total", *(f"{sum(r[k] for r in table.values()):,}" for k in header[1:])])
    print(_format_table(header, body))
    print(f"\n{len(rows):,} images split with seed {config.data.seed}; {len(result.rejected)} rejected")
    if len(folders) > 1:
        table = splitting.folder_distribution(rows, len(folders))
        print(
            _format_table(
                ["folder", *splitting.SPLITS, "all"],
                [[str(f), *map(str, n.values())] for f, n in zip(folders, table, strict=True)],
            )
        )
    leaked = splitting.leaked_rows(rows)
    if config.data.split_strategy != "grouped" or leaked:
        print(
            f"WARNING: LEAKING SPLIT ({config.data.split_strategy}): {len(leaked):,} of "
            f"{sum(r.split == 'test' for r in rows):,} test images have an exact or near copy in train; "
            "its test accuracy is not a measure of photos the model never saw",
            file=sys.stderr,
        )
    print(f"wrote {out / 'manifest.csv'}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from pilah.runs import Run, resume_point

    # Wrong usage, or a run that cannot resume, fails before Keras loads (seconds of importing TensorFlow).
    if args.resume:
        run, state = resume_point(Path(args.resume))
        from pilah.training import strategies

        run = strategies.resume(run, state)
    else:
        if not args.data:
            raise UsageError("pilah train needs --data DIR (or --resume RUN_DIR)")
        config = load_config(args)
        from pilah.training import strategies

        data, out = [Path(d) for d in args.data], Path(args.out) if args.out else None
        run = strategies.train(config, data, out, Path(args.manifest) if args.manifest else None)
    if not args.no_evaluate:
        from pilah.evaluation.evaluate import evaluate

        _print_metrics(evaluate(Run.open(run.paths.root)))
    print(f"run folder: {run.paths.root}")
    return EXIT_OK


def _data_folders(args: argparse.Namespace) -> list[Path]:
    """`pilah data scan A B` or `--data A --data B`: the first names the classes, the others add images."""
    folders = [Path(d) for d in [*args.dirs, *(args.data or [])]]
    if not folders:
        raise UsageError(f"pilah data {args.data_verb} needs a data folder: pilah data {args.data_verb} DIR [DIR ...]")
    return folders


def _print_folder_counts(folders: list[Path], counts: list[int]) -> None:
    if len(folders) > 1:
        for folder, count in zip(folders, counts, strict=True):
            print(f"  {folder}: {count:,} images")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pilah.runs import Run

    run = Run.open(args.run)
    if args.data:
        run.config.data.root = str(Path(args.data).resolve())
    if args.set:
        run.set_evaluation(args.set)  # kept in the run's evaluation.yaml, so later evaluations agree
    from pilah.evaluation.evaluate import evaluate  # after the checks above: a wrong setting fails before Keras loads

    _print_metrics(evaluate(run, Path(args.model) if args.model else None))
    print(f"wrote {run.paths.metrics} and figures in {run.paths.plots}")
    return EXIT_OK


def cmd_package(args: argparse.Namespace) -> int:
    from pilah.evaluation.card import package
    from pilah.runs import Run

    target = package(Run.open(args.run), Path(args.out), args.name)
    print(f"wrote {target} and its model card ({target.with_suffix('.json').name}, {target.with_suffix('.md').name})")
    return EXIT_OK


def cmd_open_set(args: argparse.Namespace) -> int:
    from pilah.evaluation.card import add_to_models
    from pilah.runs import Run

    block = add_to_models(Run.open(args.run), [Path(model) for model in args.models])
    print(
        f"open-set score (k-NN at layer {block['layer']}, k {block['k']}, {block['bank_photos']} bank photos): "
        f"threshold {block['threshold']:.4f}, {block['validation']['refused'] * 100:.2f} % of "
        f"{block['validation']['photos']} validation photos refused; written into the cards of "
        + ", ".join(args.models)
    )
    return EXIT_OK


def _print_metrics(metrics: dict) -> None:
    rows = [
        [
            name,
            f"{s['images']:,}",
            f"{s['accuracy'] * 100:.2f} %",
            f"{s['loss']:.4f}",
            f"{s['ece'] * 100:.2f} %",
            f"{s['ece_calibrated'] * 100:.2f} %",
        ]
        for name, s in metrics["splits"].items()
    ]
    print(_format_table(["split", "images", "accuracy", "loss", "ECE", "ECE (T-scaled)"], rows))
    print(f"test macro-F1 {metrics['test']['macro_f1']:.4f}; temperature {metrics['temperature']:.3f}")


def cmd_predict(args: argparse.Namespace) -> int:
    from pilah.inference import results
    from pilah.inference.predictor import Predictor, expand_inputs
    from pilah.progress import track

    if args.region:
        guidance.pack(args.region)  # an unknown region fails before any image is read
    out = args.out or args.csv
    if args.engine == "ray":
        return _predict_on_ray(args, out)
    predictor = Predictor(args.model, max_pixels=args.max_pixels)
    print(f"model {predictor.model_path}\nruntime {predictor.runtime}: {predictor.check.summary()}", file=sys.stderr)
    paths = expand_inputs(args.inputs)
    if not paths:
        print(f"pilah: no images found in {', '.join(args.inputs)}", file=sys.stderr)
        return EXIT_NOTHING_CLASSIFIED
    classified = 0

    def counted(predictions):
        nonlocal classified
        for result in predictions:
            classified += result.error is None
            yield result

    predictions = counted(predictor.predict_paths(paths, args.batch_size, args.top_k))
    if out or args.json:
        predictions = track(predictions, len(paths), "predicting")
    if out:
        with results.ResultWriter(out, results.columns(predictor.classes, args.region)) as writer:
            writer.write(results.row(p, predictor.classes, args.region, args.language) for p in predictions)
        return _classified_status(classified, len(paths))
    for result in predictions:
        place = results.destination(result, args.region, args.language) if args.region and result.label else None
        if args.json:
            print(json.dumps({**result.to_dict(), "advice": place.model_dump() if place else None}), flush=True)
        else:
            unsure = "if unsure: " if results.names_no_class(result) else ""
            print(_describe_prediction(result) + (f"  -> {unsure}{place.stream_name}" if place else ""), flush=True)
    return _classified_status(classified, len(paths))


def _classified_status(classified: int, inputs: int) -> int:
    """0 when at least one image was classified (bad files keep their error rows); else say so, and 3."""
    if classified:
        return EXIT_OK
    print(f"pilah: none of the {inputs} inputs could be classified (see each one's error)", file=sys.stderr)
    return EXIT_NOTHING_CLASSIFIED


def _predict_on_ray(args: argparse.Namespace, out: str | None) -> int:
    """`--engine ray`: the same rows, from a pool of Ray actors (docs/scaling.md)."""
    from pilah.inference.card import read_card
    from pilah.inference.predictor import expand_inputs
    from pilah.progress import Progress

    try:
        from pilah.inference import ray_engine
    except ModuleNotFoundError as error:
        raise UsageError(f"--engine ray needs Ray: pip install 'pilah[ray]' ({error.name} is missing)") from error
    if not out:
        raise UsageError("--engine ray writes its results to a file: add --out results.parquet (or .csv)")
    model = _model_file(args.model)
    remote = [s for s in args.inputs if "://" in s]
    sources = remote + [str(p.resolve()) for p in expand_inputs(s for s in args.inputs if "://" not in s)]
    job = ray_engine.RayJob(
        sources,
        str(model),
        args.workers,
        args.address,
        args.region,
        args.language,
        args.top_k,
        args.max_pixels,
        args.batch_size,
    )
    progress = Progress("predicting on Ray")
    total = len(sources) if not remote else 0
    started = time.perf_counter()
    rows = ray_engine.run(job, Path(out), read_card(model).classes, lambda n: progress(n, max(total, n)))
    seconds = time.perf_counter() - started
    print(f"\n{rows:,} rows in {out} ({rows / seconds:.1f} images/s with {args.workers} actors)", file=sys.stderr)
    return EXIT_OK


def _describe_prediction(result) -> str:
    if result.error:
        return f"{result.source}: ERROR {result.error_code}: {result.error}"
    others = ", ".join(f"{k} {p:.1%}" for k, p in result.top_k[1:])
    flag = {
        "sure": "",
        "likely": "  (likely)",
        "two": "  (one of the top two)",
        "none": "  (cannot tell)",
        "unfamiliar": "  (not household waste Pilah knows)",
    }[result.grade]
    return f"{result.source}: {result.label} {result.confidence:.1%}{flag}  [{others}]"


def cmd_guidance_check(args: argparse.Namespace) -> int:
    pack = guidance.read_pack(args.file)
    languages, streams = ", ".join(pack.languages), ", ".join(pack.streams)
    print(f"{args.file}: a valid pack for region {pack.region!r} ({languages}), {len(pack.classes)} classes")
    print(f"streams: {streams}")
    lookalikes = sum(len(rule.exceptions) for rule in pack.classes.values())
    print(f"look-alikes (exceptions): {lookalikes}; when unsure: {pack.when_unsure.stream}")
    return EXIT_OK


def cmd_guidance_list(args: argparse.Namespace) -> int:
    rows = []
    for region in guidance.regions():
        pack = guidance.pack(region)
        rows.append([region, pack.name.get("en", region), ", ".join(pack.languages), str(len(pack.streams))])
    print(_format_table(["region", "name", "languages", "streams"], rows))
    return EXIT_OK


def cmd_data_corrections(args: argparse.Namespace) -> int:
    from pilah.data.corrections import folder_of, summarise

    if args.first == "review":
        if not args.dir:
            raise UsageError("pilah data corrections review DIR: name the corrections folder")
        return _review_corrections(args)
    if args.dir:
        raise UsageError(f"pilah data corrections takes one folder, or `review DIR` (got {args.first!r})")
    folder = args.first
    summary = summarise(folder)
    if not summary.records:
        print(f"no corrections in {folder}")
        return EXIT_OK
    wrong = sum(row["wrong"] for row in summary.per_class.values())
    print(f"{summary.records} answers from users in {folder}: the model was wrong {wrong} times")
    rows = [
        [label, str(row["answers"]), str(row["right"]), str(row["wrong"]), str(summary.photos.get(folder_of(label), 0))]
        for label, row in summary.per_class.items()
    ]
    print(_format_table(["class (users' answer)", "answers", "model right", "model wrong", "photos kept"], rows))
    print("\nreviews: " + ", ".join(f"{count} {state}" for state, count in summary.reviews.items()))
    if summary.confusions:
        print("\nconfusions (the model said -> users said):")
        for predicted, chosen, count in summary.confusions:
            print(f"  {predicted} -> {chosen}: {count}")
    return EXIT_OK


REVIEW_KEYS = {"a": "accepted", "r": "rejected"}


def _review_corrections(args: argparse.Namespace) -> int:
    """Decisions from flags, else one question per pending photo on standard input (a, r, l CLASS, s, q)."""
    from collections import Counter

    from pilah.data.corrections import PENDING, CorrectionStore, review_states
    from pilah.inference.card import read_card

    classes = read_card(_model_file(args.model)).classes
    store = CorrectionStore(args.dir, classes)
    decisions = [(sha1, "accepted", None) for sha1 in args.accept] + [(sha1, "rejected", None) for sha1 in args.reject]
    for item in args.relabel:
        sha1, _, label = item.partition("=")
        decisions.append((sha1, "accepted", label or None))
    if not decisions:
        decisions = _ask_decisions({k: v for k, v in review_states(args.dir).items() if v.state == PENDING})
    for record in store.review_many(decisions):
        print(f"{record['sha1'][:12]}  {record['decision']} as {record['label']}")
    states = review_states(args.dir).values()
    counts = Counter(s.state for s in states)
    print(f"{counts['accepted']} accepted, {counts['rejected']} rejected, {counts[PENDING]} pending in {args.dir}")
    return EXIT_OK


def _ask_decisions(pending: dict) -> list[tuple[str, str, str | None]]:
    decisions = []
    print(f"{len(pending)} corrections to review: a = accept, r = reject, l CLASS = relabel, s = skip, q = quit")
    for sha1, state in pending.items():
        print(f"{state.path}  (the user said {state.label})  [a/r/l CLASS/s/q]? ", end="", flush=True)
        answer = sys.stdin.readline().strip().split()
        if not answer or answer[0] == "q":
            break
        if answer[0] in REVIEW_KEYS:
            decisions.append((sha1, REVIEW_KEYS[answer[0]], None))
        elif answer[0] == "l" and len(answer) == 2:
            decisions.append((sha1, "accepted", answer[1]))
    return decisions


def _format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _model_file(model: str | None, fast: bool = True) -> Path:
    """The model a verb should load: `--model`, else the bundled one (its fast export unless `fast` is False)."""
    from pilah.errors import ModelNotFoundError
    from pilah.inference.predictor import bundled_model

    path = Path(model) if model else bundled_model(fast)
    if not path.is_file():
        raise ModelNotFoundError(f"model not found: {path}")
    return path.absolute()  # not resolve(): a symlinked model keeps the card beside the link


def cmd_app(args: argparse.Namespace) -> int:
    """Start the Streamlit app as a child process; stopping `pilah app` stops it too."""
    import os
    import subprocess

    from pilah.app.settings import AppSettings

    model = _model_file(args.model)
    if args.region:
        guidance.pack(args.region)  # an unknown region fails here, not in the page
    settings = AppSettings(
        model=str(model),
        corrections=str(Path(args.corrections).resolve()) if args.corrections else None,
        region=args.region,
    )
    page = Path(__file__).parent / "app" / "page.py"
    command = [sys.executable, "-m", "streamlit", "run", str(page)]
    command += ["--server.address", args.host, "--server.port", str(args.port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(STREAMLIT_MAX_UPLOAD_MB)]
    command += ["--client.toolbarMode", "viewer"]
    print(f"Pilah app on http://{args.host}:{args.port}  (model {model}; Ctrl-C stops it)", flush=True)
    if settings.corrections:
        print(f"corrections that users agree to share go to {settings.corrections}", flush=True)
    env = {**os.environ, **settings.as_environment()}
    child = subprocess.Popen(command, env=env)
    try:
        return child.wait()
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait(timeout=30)


def cmd_web_build(args: argparse.Namespace) -> int:
    from pilah.web.build import build_site

    started = time.perf_counter()
    site = build_site(
        Path(args.out), Path(args.model) if args.model else None, Path(args.runtime) if args.runtime else None
    )
    heavy = sorted(site.files.items(), key=lambda item: -item[1])[:4]
    print(
        f"wrote {len(site.files)} files, {site.total_bytes / 1e6:.1f} MB, into {site.folder} in "
        f"{time.perf_counter() - started:.0f} s (onnxruntime-web {site.runtime_version})"
    )
    print(_format_table(["largest files", "MB"], [[name, f"{size / 1e6:.1f}"] for name, size in heavy]))
    print(f"try it: pilah web serve --dir {site.folder}")
    return EXIT_OK


def cmd_web_serve(args: argparse.Namespace) -> int:
    from pilah.web.server import make_server

    server = make_server(Path(args.dir), args.host, args.port)
    print(f"Pilah offline web app on http://{args.host}:{server.server_address[1]}/  (Ctrl-C stops it)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            "note: a phone on this network can open it, but browsers keep a site for offline use (service worker) "
            "and run it threaded only over HTTPS or on localhost: deploy the folder to an HTTPS host for that "
            "(docs/web.md)",
            flush=True,
        )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from pilah.inference.export import card_path, export
    from pilah.inference.predictor import Predictor

    model = _model_file(args.model, fast=False)
    started = time.perf_counter()
    written = export(model, args.format, args.quantize, Path(args.out) if args.out else None, args.calibration)
    print(f"exported in {time.perf_counter() - started:.0f} s")
    for out in written:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {card_path(out).name}")
        predictor = Predictor(out)  # the export loaded as a user will, self-check included
        print(f"  runtime {predictor.runtime}: {predictor.check.summary()}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from pilah.serving.settings import LOOPBACK_HOSTS, ServiceConfig

    model = _model_file(args.model)
    flags = {
        "model": str(model),
        "max_upload_mb": args.max_upload_mb,
        "queue": args.queue,
        "timeout_s": args.timeout,
        "corrections": str(Path(args.corrections).resolve()) if args.corrections else None,
        "feedback_token": args.feedback_token,  # else PILAH_FEEDBACK_TOKEN, which `ps` does not show
        "allowed_origins": tuple(args.allow_origin or ()) or None,
        "feedback_per_minute": args.feedback_per_minute,
    }
    config = ServiceConfig(**{key: value for key, value in flags.items() if value is not None})
    if config.corrections and config.feedback_token is None and args.host not in LOOPBACK_HOSTS:
        raise UsageError(
            f"--corrections on {args.host} lets the network write to disk: set PILAH_FEEDBACK_TOKEN (or "
            "--feedback-token) to a secret that clients send as 'Authorization: Bearer <token>'"
        )
    if args.engine == "ray":
        try:
            from pilah.serving.ray_serve import serve_on_ray
        except ModuleNotFoundError as error:
            raise UsageError(
                f"--engine ray needs Ray Serve: pip install 'pilah[ray]' ({error.name} is missing)"
            ) from error
        serve_on_ray(config, args.host, args.port, args.replicas, args.address, args.max_replicas)
        return EXIT_OK
    from pilah.serving.api import serve

    serve(config, args.host, args.port)
    return EXIT_OK


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a YAML file of settings, e.g. configs/cpu.yaml (defaults: pilah config)")
    parser.add_argument(
        "--all-corrections",
        action="store_true",
        help="a corrections folder among the data gives its pending corrections too, not only accepted ones "
        "(never rejected ones; data.corrections=all)",
    )
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config value")
    parser.add_argument("--seed", type=int, help="split seed (data.seed)")


def _add_server_flags(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument(
        "--corrections", metavar="DIR", help="keep users' corrections (photo and record) here; off by default"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=int, default=port)


def build_parser() -> argparse.ArgumentParser:
    from pilah.serving.settings import ServiceConfig  # one set of server defaults, for the API and for this help

    defaults = ServiceConfig()
    parser = argparse.ArgumentParser(prog="pilah", description="Sort your waste: classify photos of household waste.")
    parser.add_argument("--version", action="version", version=f"pilah {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)

    config = verbs.add_parser("config", help="print the settings (the defaults, or a --config file's with --set)")
    _add_config_flags(config)
    config.set_defaults(func=cmd_config)

    data = verbs.add_parser("data", help="inspect and split a folder-per-class data set")
    data_verbs = data.add_subparsers(dest="data_verb", required=True)
    scan = data_verbs.add_parser("scan", help="count images per class, list bad files and duplicates")
    scan.add_argument("--out", help="also write rejected.csv, duplicates.csv and a class chart here")
    split = data_verbs.add_parser("split", help="stratified, duplicate-aware train/val/test split")
    split.add_argument("--out", required=True, help="folder for manifest.csv and the distribution")
    split.add_argument(
        "--strategy",
        choices=("grouped", "random"),
        help="grouped (default): copies stay in one split; random: as the seed project, copies leak",
    )
    split.add_argument(
        "--refit",
        type=float,
        metavar="FRACTION",
        help="for a final fit: move this share of validation into training (test unchanged; data.refit_fraction)",
    )
    corrections = data_verbs.add_parser(
        "corrections",
        help="what users corrected (per class, the confusions, the reviews); `review DIR` decides what trains",
        description="pilah data corrections DIR: a summary. pilah data corrections review DIR: accept, reject or "
        "relabel each pending correction (asked one by one, or with --accept/--reject/--relabel); the decisions "
        "go to the log, nothing is deleted, and training takes accepted corrections only (--all-corrections: "
        "pending ones too).",
    )
    corrections.add_argument("first", metavar="DIR | review", help="a corrections folder, or `review`")
    corrections.add_argument("dir", nargs="?", metavar="DIR", help="with review: the corrections folder")
    corrections.add_argument("--accept", nargs="+", default=[], metavar="SHA1", help="review: accept these")
    corrections.add_argument("--reject", nargs="+", default=[], metavar="SHA1", help="review: reject these")
    corrections.add_argument(
        "--relabel", nargs="+", default=[], metavar="SHA1=CLASS", help="review: accept these as another class"
    )
    corrections.add_argument("--model", help="review: the model whose classes a relabel may name (default: bundled)")
    corrections.set_defaults(func=cmd_data_corrections)
    for verb, func in ((scan, cmd_data_scan), (split, cmd_data_split)):
        verb.add_argument("dirs", nargs="*", metavar="DIR", help="data folders: the first names the classes")
        verb.add_argument("--data", action="append", metavar="DIR", help="another data folder (e.g. corrections)")
        verb.add_argument("--workers", type=int, default=2, help="decoding threads")
        _add_config_flags(verb)
        verb.set_defaults(func=func)

    train = verbs.add_parser("train", help="train the seed's Xception model into a run folder")
    train.add_argument(
        "--data",
        action="append",
        metavar="DIR",
        help="folder-per-class data set (or Kaggle's layout); repeat to add folders, e.g. corrections",
    )
    train.add_argument("--weights", help="imagenet (download), a .weights.h5 file, or none")
    train.add_argument("--out", help="run folder (default: runs/train, runs/train2, ...)")
    train.add_argument("--manifest", help="use this manifest.csv instead of scanning and splitting")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--image-size", type=int)
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    train.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")
    _add_config_flags(train)
    train.set_defaults(func=cmd_train)

    evaluate = verbs.add_parser("evaluate", help="metrics.json and figures for a run")
    evaluate.add_argument("run", help="run folder")
    evaluate.add_argument("--data", help="data folder, if it moved since training")
    evaluate.add_argument("--model", help="model file (default: the run's best.keras)")
    evaluate.add_argument(
        "--set",
        action="append",
        metavar="eval.KEY=VALUE",
        help="change an evaluation setting, e.g. eval.flip_tta=true (kept in the run's evaluation.yaml)",
    )
    evaluate.set_defaults(func=cmd_evaluate)

    package = verbs.add_parser("package", help="copy a run's best model and its model card into models/")
    package.add_argument("run", help="an evaluated run folder")
    package.add_argument("--out", default="models")
    package.add_argument("--name", default="pilah-xception")
    package.set_defaults(func=cmd_package)

    open_set = verbs.add_parser(
        "open-set",
        help="fit the 'not household waste Pilah knows' score for packaged models that have none",
        description="Fit the open-set score (k-NN distance, eval.open_set_*) on the run's training sample and "
        "validation split, with the first model's runtime, and write its bank and threshold beside and into the "
        "card of each model (a .keras file and its exports; weights and quantization unchanged).",
    )
    open_set.add_argument("run", help="the run folder the models were packaged from")
    open_set.add_argument(
        "models", nargs="+", metavar="MODEL", help="the models to give the score, fitted on the first"
    )
    open_set.set_defaults(func=cmd_open_set)

    predict = verbs.add_parser("predict", help="classify images or folders of images")
    predict.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    predict.add_argument("--model", help=MODEL_HELP)
    predict.add_argument("--out", help="write one row per image to this .csv or .parquet file")
    predict.add_argument("--csv", help="the same as --out FILE.csv")
    predict.add_argument("--json", action="store_true", help="print one JSON object per image")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse bigger images (decompression bombs)"
    )
    predict.add_argument("--region", help="add where each goes in this region (pilah guidance list)")
    predict.add_argument("--language", default="en", choices=guidance.LANGUAGES, help="the advice's language")
    predict.add_argument(
        "--engine", default="local", choices=("local", "ray"), help="ray: Ray Data actors, here or on a cluster"
    )
    predict.add_argument("--address", help="--engine ray: join this Ray cluster (default: start one here)")
    predict.add_argument("--workers", type=int, default=2, help="--engine ray: actors, each with one model")
    predict.set_defaults(func=cmd_predict)

    export = verbs.add_parser("export", help="export a model to ONNX or TFLite (fp32, fp16, int8) for fast inference")
    export.add_argument("--model", help="a .keras model (default: models/pilah-xception.keras)")
    export.add_argument("--format", required=True, choices=["onnx", "tflite"])
    export.add_argument(
        "--quantize",
        nargs="+",
        default=["fp32"],
        choices=["fp32", "fp16", "int8"],
        help="one or more: several share one conversion (default fp32)",
    )
    export.add_argument(
        "--calibration", nargs="+", metavar="RUN_OR_IMAGES", help="int8: a run folder (its training split) or images"
    )
    export.add_argument(
        "--out",
        help="output file (default: beside the model, e.g. pilah-xception-int8.onnx); with several --quantize, a "
        "folder for files of those default names",
    )
    export.set_defaults(func=cmd_export)

    app = verbs.add_parser("app", help="start the web app (Streamlit) with the bundled model")
    _add_server_flags(app, port=8501)
    app.add_argument("--region", help="the region whose disposal advice shows first (pilah guidance list)")
    app.set_defaults(func=cmd_app)

    serve = verbs.add_parser("serve", help="start the REST API (FastAPI + uvicorn) with the bundled model")
    _add_server_flags(serve, port=8000)
    serve.add_argument(
        "--max-upload-mb", type=float, default=defaults.max_upload_mb, help="largest file accepted (413 above)"
    )
    serve.add_argument("--queue", type=int, default=defaults.queue, help="requests waiting beyond those running")
    serve.add_argument("--timeout", type=float, default=defaults.timeout_s, help="seconds before a request gets 504")
    serve.add_argument(
        "--feedback-token",
        help="a secret that POST /v1/feedback must carry (Authorization: Bearer ...); required with --corrections "
        "beyond loopback; PILAH_FEEDBACK_TOKEN sets it without showing it to `ps`",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        help="a web site whose pages may call the API, feedback included (CORS), e.g. https://sort.example.org",
    )
    serve.add_argument(
        "--feedback-per-minute",
        type=int,
        help=f"feedback requests a client address may send a minute (default {defaults.feedback_per_minute})",
    )
    serve.add_argument("--engine", default="local", choices=("local", "ray"), help="ray: replicas on Ray Serve")
    serve.add_argument("--replicas", type=int, default=2, help="--engine ray: model replicas (the minimum)")
    serve.add_argument("--max-replicas", type=int, help="--engine ray: autoscale up to this many replicas")
    serve.add_argument("--address", help="--engine ray: join this Ray cluster (default: start one here)")
    serve.set_defaults(func=cmd_serve)

    web = verbs.add_parser("web", help="the offline browser app: build the static site, serve it to try it")
    web_verbs = web.add_subparsers(dest="web_verb", required=True)
    web_build = web_verbs.add_parser("build", help="write the static site (page, model, runtime, texts, packs)")
    web_build.add_argument("--out", default="build/web", help="the site's folder (default build/web)")
    web_build.add_argument("--model", help="an .onnx model with its card (default: the bundled int8 model)")
    web_build.add_argument(
        "--runtime", help="an onnxruntime-web dist folder (default: the version package-lock.json pins, via npm ci)"
    )
    web_build.set_defaults(func=cmd_web_build)
    web_serve = web_verbs.add_parser("serve", help="serve a built site on loopback (for a browser or a phone)")
    web_serve.add_argument("--dir", default="build/web", help="the site's folder (default build/web)")
    web_serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the whole network)")
    web_serve.add_argument("--port", type=int, default=8700, help="port (default 8700; 0: any free port)")
    web_serve.set_defaults(func=cmd_web_serve)

    guide = verbs.add_parser("guidance", help="regional disposal guidance packs: list them, check one you wrote")
    guide_verbs = guide.add_subparsers(dest="guidance_verb", required=True)
    guide_verbs.add_parser("list", help="the regions that ship with Pilah").set_defaults(func=cmd_guidance_list)
    check = guide_verbs.add_parser("check", help="validate a pack file (docs/guidance.md says how to write one)")
    check.add_argument("file")
    check.set_defaults(func=cmd_guidance_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    interrupts.install()  # `kill` stops as cleanly as Ctrl-C
    try:
        return args.func(args)
    except KeyboardInterrupt:
        resume = " A training run continues with: pilah train --resume RUN_DIR" if args.verb == "train" else ""
        print(f"\ninterrupted.{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except PilahError as error:
        print(f"pilah: error: {error}", file=sys.stderr)
        return error.exit_status
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] not in TRAIN_EXTRA:
            raise
        print(f"pilah: error: pilah {args.verb} needs {error.name}: pip install 'pilah[train]'", file=sys.stderr)
        return UsageError.exit_status


if __name__ == "__main__":
    sys.exit(main())
