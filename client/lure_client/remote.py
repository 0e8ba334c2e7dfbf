"""CLI commands that drive a running server through :class:`lure_client.client.LureClient`:
``lure create``, ``push``, ``predict``, ``versions``, ``watch``, ``promote``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lure_client.client import (
    LureClient,
    LureError,
    load_image_folder,
    load_npz_arrays,
    state_dict_file,
)
from lure_client.errors import fail

URL = typer.Option(
    "http://127.0.0.1:8000", "--url", envvar="LURE_URL", help="Server URL (LURE_URL)."
)
API_KEY = typer.Option(None, "--api-key", envvar="LURE_API_KEY", help="API key (LURE_API_KEY).")
MODEL = typer.Option(..., "--model", "-m", help="Model name.")
console = Console(width=None if sys.stdout.isatty() else 200)  # full tables when piped


def _client(url: str, api_key: str | None) -> LureClient:
    return LureClient(url, api_key)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def create(
    name: str = typer.Argument(..., help="Model name."),
    architecture: str = typer.Option("resnet18"),
    width: float = typer.Option(1.0),
    num_classes: int = typer.Option(..., help="Number of classes."),
    image_size: int = typer.Option(32),
    channels: int = typer.Option(3),
    strategy: str = typer.Option("lure"),
    replay: str = typer.Option("full", help="full | buffer | none"),
    buffer_size: int = typer.Option(None),
    megabatch_size: int = typer.Option(1000),
    epochs: int = typer.Option(50),
    hflip: bool = typer.Option(
        True, help="Flip augmentation (off where a mirror changes the label)."
    ),
    option: list[str] = typer.Option(
        [], "--set", help="Any other model field as key=JSON, e.g. --set lr=0.05"
    ),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Create a model on the server."""
    config = {
        "architecture": architecture,
        "width": width,
        "num_classes": num_classes,
        "image_size": image_size,
        "channels": channels,
        "strategy": strategy,
        "replay": replay,
        "megabatch_size": megabatch_size,
        "epochs": epochs,
        "hflip": hflip,
    }
    if buffer_size is not None:
        config["buffer_size"] = buffer_size
    for item in option:
        key, _, value = item.partition("=")
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    try:
        with _client(url, api_key) as client:
            model = client.create_model(name, **config)
    except LureError as error:
        raise fail(str(error.detail)) from None
    typer.echo(
        f"created model {model['name']} ({model['config']['architecture']}, "
        f"{model['config']['strategy']}, mega-batches of {model['config']['megabatch_size']})"
    )


def _load(data: str, split: str):
    if data == "digits":
        try:  # the bundled demo data comes with the server's package, not the light client
            from lure_engine.data import load_digits_dataset
        except ImportError:
            raise ValueError(
                "'digits' comes with the server's package (pip install -e . in its checkout); "
                "the light client pushes an .npz file or an image folder"
            ) from None
        dataset = load_digits_dataset()
        arrays = dataset.train if split == "train" else dataset.test
        return arrays.x, arrays.y
    path = Path(data)
    if path.is_dir():
        x, y, _ = load_image_folder(path)
        return x, y
    if path.suffix == ".npz" and path.is_file():
        return load_npz_arrays(path, split)
    raise ValueError(
        f"{data}: expected an .npz file, an image folder (one subfolder per class) or 'digits'"
    )


def push(
    data: str = typer.Argument(
        ..., help=".npz (x/y or x_train/y_train...), image folder, or 'digits'."
    ),
    model: str = MODEL,
    split: str = typer.Option("train", help="train | test"),
    chunk_size: int = typer.Option(500, help="Samples per request."),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Send labelled data in chunks, with a progress bar. Safe to re-run after an interruption."""
    if split not in ("train", "test"):
        raise fail(f"--split must be train or test, got {split!r}")
    try:
        x, y = _load(data, split)
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
    columns = (
        TextColumn("push"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples"),
        TimeRemainingColumn(),
    )
    try:
        with (
            _client(url, api_key) as client,
            Progress(*columns, console=Console(stderr=True)) as bar,
        ):
            task = bar.add_task("push", total=len(x))
            answers = client.push_arrays(
                model,
                x,
                y,
                split=split,
                chunk_size=chunk_size,
                progress=lambda done, _: bar.update(task, completed=done),
            )
    except LureError as error:
        raise fail(str(error.detail)) from None
    typer.echo(_push_summary(answers, len(x), split, model))


def _push_summary(answers: list[dict], samples: int, split: str, model: str) -> str:
    sealed = [index for a in answers for index in a.get("sealed", [])]
    replayed = sum(a.get("replayed", False) for a in answers)
    parts = [f"pushed {samples} {split} samples in {len(answers)} chunks to {model}"]
    if replayed:
        parts.append(f" ({replayed} chunks were already stored; none stored twice)")
    if sealed:
        parts.append(f"; sealed mega-batches {sealed}")
    if open_row := answers[-1].get("open_megabatch"):
        fill = f"{open_row['n_samples']}/{open_row['size']}"
        parts.append(f"; open mega-batch #{open_row['index']} holds {fill}")
    return "".join(parts)


def predict(
    images: list[Path] = typer.Argument(..., help="PNG or JPEG files."),
    model: str = MODEL,
    version: int = typer.Option(None, help="Pin a version (default: live)."),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Classify image files with the live (or a pinned) version."""
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise fail(f"no such file: {', '.join(missing)}")
    try:
        with _client(url, api_key) as client:
            answer = client.predict(model, images, version=version)
    except LureError as error:
        raise fail(str(error.detail)) from None
    table = Table(title=f"{model} v{answer['version']}")
    for column in ("image", "label", "confidence"):
        table.add_column(column)
    for path, prediction in zip(images, answer["predictions"], strict=False):
        table.add_row(
            str(path), str(prediction["label"]), f"{max(prediction['probabilities']):.3f}"
        )
    console.print(table)


def versions(
    model: str = MODEL,
    version: int = typer.Option(
        None, help="Show this version in full: its gate record, release and inputs."
    ),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Every version with its lineage and metrics (``--version N``: one, with its gate record)."""
    try:
        with _client(url, api_key) as client:
            if version is not None:
                typer.echo(_version_detail(client.version(model, version)))
                return
            rows = client.versions(model)
            shadows = {s["version"]: s for s in client.shadow(model)["versions"]}
    except LureError as error:
        raise fail(str(error.detail)) from None
    table = Table(title=f"versions of {model}")
    for column in VERSION_COLUMNS:
        table.add_column(column)
    for v in rows:
        table.add_row(*_version_row(v, shadows.get(v["number"])))
    console.print(table)


VERSION_COLUMNS = (
    "version",
    "mega-batch",
    "parent",
    "strategy",
    "test acc.",
    "CER",
    "gen. gap",
    "ECE",
    "train s",
    "steps",
    "gate",
    "sha256",
    "live",
    "shadow",
)


def _version_row(v: dict, shadow: dict | None) -> list[str]:
    """One version's cells in ``VERSION_COLUMNS`` order; its compute (optimiser steps; epochs
    with ``--version N``) sits beside its accuracy, as on the dashboard."""
    m = v["metrics"]
    return [
        str(v["number"]),
        "import" if v["megabatch"] is None else str(v["megabatch"]),
        "–" if v["parent"] is None else str(v["parent"]),
        v["strategy"],
        _pct(m.get("test_accuracy")),
        "–" if m.get("cer") is None else str(m["cer"]),
        _pct(m.get("generalization_gap")),
        "–" if m.get("ece") is None else f"{m['ece']:.4f}",
        f"{m.get('train_seconds', 0):.1f}",
        "–" if m.get("optimizer_steps") is None else str(m["optimizer_steps"]),
        _gate_cell(v),
        v["sha256"][:12] + (" (pruned)" if v.get("pruned") else ""),
        "●" if v["live"] else "",
        _shadow_cell(shadow),
    ]


def _shadow_cell(record: dict | None) -> str:
    """A shadow version's record in a few words: agreement with the answers served, and its
    accuracy against theirs on the requests labelled since."""
    if record is None:
        return ""
    text = f"agrees {_pct(record['agreement'])} of {record['answered']}"
    if record["labelled"]:
        text += (
            f"; acc. {_pct(record['accuracy'])} vs served {_pct(record['served_accuracy'])} "
            f"on {record['labelled']} labels"
        )
    return text


def _version_line(v: dict) -> str:
    m = v["metrics"]
    source = "imported" if v["megabatch"] is None else f"published from mega-batch {v['megabatch']}"
    return (
        f"version {v['number']} {source} ({v['strategy']}): "
        f"test accuracy {_pct(m.get('test_accuracy'))}, CER {m.get('cer')}, "
        f"sha256 {v['sha256'][:12]}; {_release(v)}"
    )


def _release(version: dict) -> str:
    """What became of a published version, in words."""
    gate = version.get("gate") or {}
    if version["release"] == "held":
        return "held by the promotion gate: " + "; ".join(gate.get("reasons", []))
    if version["release"] == "not_chosen":
        return version.get("release_note") or "a sibling candidate won"
    if version["release"] == "superseded":
        return "not live: a promotion won"
    return "live" if version["live"] else "live when published"


def _version_detail(v: dict) -> str:
    """One version in full: what it is, what became of it and why (its gate record)."""
    lines = [_version_line(v)]
    metrics = v["metrics"]
    if metrics.get("optimizer_steps") is not None:
        lines.append(
            f"compute: {metrics.get('epochs_trained')} epochs, {metrics['optimizer_steps']} "
            f"optimiser steps, {metrics.get('train_seconds', 0):.1f} s of training"
        )
    gate = v.get("gate") or {}
    if gate:
        lines.append(f"gate: {gate.get('verdict')}" + (" (winner)" if gate.get("winner") else ""))
        lines += [f"  reason: {reason}" for reason in gate.get("reasons", [])]
        for key, value in sorted((gate.get("numbers") or {}).items()):
            lines.append(f"  {key}: {value}")
        for key in ("rank_by", "margin", "rows", "forced_by"):
            if gate.get(key) is not None:
                lines.append(f"  {key}: {gate[key]}")
    if v.get("release_note"):
        lines.append(f"release: {v['release_note']}")
    if v.get("damaged"):
        lines.append(f"damaged: {v['damaged']}")
    return "\n".join(lines)


def _gate_cell(version: dict) -> str:
    gate = version.get("gate")
    if not gate:
        return "–"
    winner = " ★" if gate.get("winner") and version["release"] != "not_chosen" else ""
    delta = (gate.get("numbers") or {}).get("accuracy_delta")
    return gate["verdict"] + winner + ("" if delta is None else f" {delta * 100:+.1f}")


def audit(
    model: str = MODEL,
    version: int = typer.Option(..., help="the version to rebuild from its records"),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Rebuild a version from its parent, data references and seeds; compare its sha256."""
    try:
        with _client(url, api_key) as client:
            with console.status(f"rebuilding version {version} of {model}…"):
                answer = client.audit(model, version)
    except LureError as error:
        raise fail(str(error.detail)) from None
    typer.echo(json.dumps(answer, indent=2))
    if answer["result"] != "match":
        raise typer.Exit(1)


def configure(
    model: str = MODEL,
    strategy: str | None = typer.Option(None, help="lure, warm, … or auto"),
    challengers: str | None = typer.Option(None, help="comma-separated strategies ('' for none)"),
    retire_after: int | None = typer.Option(None, help="auto: retire after K losses in a row"),
    switch_significance: float | None = typer.Option(
        None, help="lineages: the level at which the live pointer moves to another lineage"
    ),
    policy: str | None = typer.Option(
        None,
        help='promotion policy as JSON, e.g. \'{"min_accuracy_delta": 0, "max_flip_rate": 0.2}\'',
    ),
    train_until: str | None = typer.Option(
        None,
        help="ACCURACY:MAX_EPOCHS: train each update until this training accuracy, e.g. "
        "0.99:200; 'off': exactly `epochs` again",
    ),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Change what may change while a model learns: strategy, challengers, promotion policy,
    training to a target."""
    given = {
        "strategy": strategy,
        "retire_after": retire_after,
        "switch_significance": switch_significance,
    }
    changes: dict = {field: value for field, value in given.items() if value is not None}
    if train_until is not None:
        changes["train_until"] = _train_until(train_until)
    if challengers is not None:
        changes["challengers"] = [c for c in challengers.split(",") if c]
    if policy is not None:
        try:
            changes["promotion"] = json.loads(policy)
        except ValueError as error:
            raise fail(f"--policy is not JSON: {error}") from None
    try:
        with _client(url, api_key) as client:
            answer = client.change_model(model, **changes)
    except LureError as error:
        raise fail(str(error.detail)) from None
    config = answer["config"]
    typer.echo(
        f"{model}: strategy {config['strategy']}, challengers {config.get('challengers') or []}, "
        f"switch significance {config.get('switch_significance')}, "
        f"promotion {json.dumps(config.get('promotion'))}, "
        f"train until {json.dumps(config.get('train_until'))}"
    )


def _train_until(text: str) -> dict | None:
    """``0.99:200`` → {"train_accuracy": 0.99, "max_epochs": 200}; ``off`` → None."""
    if text.strip().lower() == "off":
        return None
    accuracy, _, epochs = text.partition(":")
    try:
        return {"train_accuracy": float(accuracy), "max_epochs": int(epochs or 200)}
    except ValueError:
        raise fail(
            f"--train-until wants ACCURACY:MAX_EPOCHS (e.g. 0.99:200) or off, not {text!r}"
        ) from None


def promote(
    version: int = typer.Argument(...), model: str = MODEL, url: str = URL, api_key: str = API_KEY
) -> None:
    """Serve an older version again (rollback); the next update starts from it."""
    try:
        with _client(url, api_key) as client:
            answer = client.promote(model, version)
    except LureError as error:
        raise fail(str(error.detail)) from None
    typer.echo(f"{model}: version {answer['number']} is live")


def _job_line(job: dict) -> str:
    p = job.get("progress") or {}
    if job["state"] == "running" and p.get("phase") == "relearn":
        return (
            f"job {job['id']} (mega-batch {job['megabatch']}): "
            f"relearn epoch {p['epoch']}/{p['epochs']} "
            f"step {p['step']}/{p['steps']} loss {p['loss']:.4f}"
        )
    if job["state"] == "failed":
        last = (job.get("error") or "").splitlines()[-1:]
        return f"job {job['id']} (mega-batch {job['megabatch']}): failed: {last}"
    state = f"{job['state']} {p.get('phase', '')}".rstrip()
    return f"job {job['id']} (mega-batch {job['megabatch']}): {state}"


def watch(
    model: str = MODEL,
    until_version: int = typer.Option(None, help="Exit once this version is published."),
    interval: float = typer.Option(1.0, help="Seconds between polls."),
    timeout: float = typer.Option(None, help="Give up after this many seconds."),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Follow update jobs and new versions as they happen (Ctrl-C to stop)."""
    seen_versions: set[int] = set()
    last_lines: dict[int, str] = {}
    started = time.monotonic()
    try:
        with _client(url, api_key) as client:
            existing = client.versions(model)
            seen_versions = {v["number"] for v in existing}
            typer.echo(f"watching {model}: {len(seen_versions)} version(s) so far")
            if existing:  # the newest, so a watch started late still says where the model is
                typer.echo(_version_line(existing[-1]))
            while True:
                for job in client.jobs(model, limit=10):
                    line = _job_line(job)
                    if (
                        job["state"] in ("queued", "running", "failed")
                        and last_lines.get(job["id"]) != line
                    ):
                        typer.echo(line)
                    last_lines[job["id"]] = line
                for v in client.versions(model):
                    if v["number"] not in seen_versions:
                        seen_versions.add(v["number"])
                        typer.echo(_version_line(v))
                if until_version is not None and any(n >= until_version for n in seen_versions):
                    return
                if timeout is not None and time.monotonic() - started > timeout:
                    raise fail(f"timed out after {timeout}s", code=1)
                time.sleep(interval)
    except LureError as error:
        raise fail(str(error.detail)) from None
    except KeyboardInterrupt:
        return


jobs_app = typer.Typer(help="Update jobs: list them, retry a failed one.", no_args_is_help=True)


@jobs_app.command("list")
def jobs_list(
    model: str = MODEL,
    limit: int = typer.Option(20, help="The newest N jobs."),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """The model's jobs with their state, attempts and last error."""
    try:
        with _client(url, api_key) as client:
            rows = client.jobs(model, limit=limit)
    except LureError as error:
        raise fail(str(error.detail)) from None
    table = Table(title=f"jobs of {model}")
    for column in ("job", "mega-batch", "state", "attempts", "version", "last error"):
        table.add_column(column)
    for job in rows:
        last = (job.get("error") or "").strip().splitlines()[:1]
        table.add_row(
            str(job["id"]),
            str(job["megabatch"]),
            job["state"],
            str(job["attempts"]),
            str(job["version"] or "–"),
            last[0][:100] if last else "",
        )
    console.print(table)


@jobs_app.command("retry")
def jobs_retry(
    job_id: int = typer.Argument(..., help="A failed job's id."),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Queue a failed job again with a fresh attempt budget (admin)."""
    try:
        with _client(url, api_key) as client:
            job = client.retry_job(job_id)
    except LureError as error:
        raise fail(str(error.detail)) from None
    typer.echo(
        f"job {job['id']} (mega-batch {job['megabatch']} of {job['model']}) queued again; "
        f"{job['attempts_left']} attempts allowed"
    )


megabatches_app = typer.Typer(
    help="Mega-batches: list them with the data gate's verdicts; release or discard a "
    "quarantined one.",
    no_args_is_help=True,
)


@megabatches_app.command("list")
def megabatches_list(model: str = MODEL, url: str = URL, api_key: str = API_KEY) -> None:
    """The model's mega-batches, their state and the data gate's verdict."""
    try:
        with _client(url, api_key) as client:
            rows = client.megabatches(model)
    except LureError as error:
        raise fail(str(error.detail)) from None
    table = Table(title=f"mega-batches of {model}")
    for column in ("mega-batch", "state", "samples", "version", "data gate"):
        table.add_column(column)
    for row in rows:
        gate = row.get("data_gate") or {}
        said = "; ".join(gate.get("reasons", []) + gate.get("flags", []))
        verdict = gate.get("verdict", "–") + (f": {said[:120]}" if said else "")
        table.add_row(
            str(row["index"]),
            row["state"],
            str(row["n_samples"]),
            str(row["version"] or "–"),
            verdict,
        )
    console.print(table)


def _decide(model: str, index: int, action: str, url: str, api_key: str) -> None:
    try:
        with _client(url, api_key) as client:
            row = client.decide_quarantined(model, index, action)
    except LureError as error:
        raise fail(str(error.detail)) from None
    done = "released: it trains next" if action == "release" else "discarded: never trained on"
    typer.echo(f"mega-batch {row['index']} of {model} {done}")


@megabatches_app.command("release")
def megabatches_release(
    index: int = typer.Argument(..., help="The quarantined mega-batch's index."),
    model: str = MODEL,
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Train a quarantined mega-batch as it is (admin); the data gate does not judge it again."""
    _decide(model, index, "release", url, api_key)


@megabatches_app.command("discard")
def megabatches_discard(
    index: int = typer.Argument(..., help="The quarantined mega-batch's index."),
    model: str = MODEL,
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Keep a quarantined mega-batch out of training for good (admin)."""
    _decide(model, index, "discard", url, api_key)


def import_(
    weights: Path = typer.Argument(..., help="A .safetensors, .pt or .pth state dict."),
    model: str = MODEL,
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Import a team's trained weights as version 0 of a new model (converted here: the server
    never unpickles)."""
    try:
        body = state_dict_file(weights)
    except (ValueError, OSError, RuntimeError) as error:
        raise fail(str(error)) from None
    try:
        with _client(url, api_key) as client:
            version = client.import_weights(model, body)
    except LureError as error:
        raise fail(str(error.detail)) from None
    accuracy = version["metrics"].get("test_accuracy")
    typer.echo(
        f"{model}: imported {weights.name} as version 0 (live), sha256 {version['sha256'][:12]}"
        + (f", test accuracy {_pct(accuracy)}" if accuracy is not None else "")
    )


def export(
    version: int = typer.Option(None, help="The version (default: the live one)."),
    format: str = typer.Option("onnx", help="safetensors | torchscript | onnx"),
    out: Path = typer.Option(Path("."), help="Folder for the artefact and its model card."),
    model: str = MODEL,
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Download a version (built and verified on the server) and its model card."""
    try:
        with _client(url, api_key) as client:
            number = version if version is not None else client.model(model)["live_version"]
            if number is None:
                raise fail(f"model {model!r} has no version yet")
            data, card = client.export(model, number, format)
    except LureError as error:
        raise fail(str(error.detail)) from None
    out.mkdir(parents=True, exist_ok=True)
    artefact = out / f"{model}-v{number}.{card['format'] if format != 'torchscript' else 'pt'}"
    artefact.write_bytes(data)
    card_path = artefact.with_name(artefact.name + ".card.json")
    card_path.write_text(json.dumps(card, indent=2))
    check = card["verification"]
    typer.echo(
        f"{artefact} ({len(data)} bytes, sha256 {card['sha256'][:12]}) and {card_path.name}; "
        f"verified on {check['images']} images ({check['on']}): max |Δ logit| "
        f"{check['max_abs_logit_diff']:.2g}"
    )
