"""``lure label-queue`` and ``lure feedback``: what to label next, written to a folder a person
fills in, and the labels sent back by prediction id (issue 28 §2-3)."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from lure_client.client import LureError
from lure_client.errors import fail
from lure_client.remote import API_KEY, MODEL, URL, _client

FIELDS = ["prediction_id", "image", "predicted", "confidence", "label"]


def label_queue(
    folder: Path = typer.Argument(..., help="A new (or empty) folder: images plus labels.csv."),
    model: str = MODEL,
    by: str = typer.Option("margin", help="margin | entropy | least_confidence"),
    limit: int = typer.Option(50, min=1, max=10_000),
    version: int = typer.Option(None, help="Only this version's answers (default: all)."),
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Write the most uncertain logged predictions to FOLDER: one PNG each and labels.csv with an
    empty `label` column to fill in; `lure feedback FOLDER/labels.csv` sends it back."""
    if folder.exists() and any(folder.iterdir()):
        raise fail(f"{folder} is not empty: name a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _client(url, api_key) as client:
            queue = client.label_queue(model, by, limit, version)
            with typer.progressbar(queue, label="fetching images") as items:
                for item in items:
                    name = f"{item['prediction_id']}.png"
                    (folder / name).write_bytes(client.prediction_image(item["image_url"]))
    except LureError as error:
        raise fail(str(error.detail)) from None
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for item in queue:
            writer.writerow(
                {
                    "prediction_id": item["prediction_id"],
                    "image": f"{item['prediction_id']}.png",
                    "predicted": item["predicted"],
                    "confidence": f"{item['confidence']:.4f}",
                    "label": "",
                }
            )
    typer.echo(f"{len(queue)} predictions to label in {folder / 'labels.csv'} (by {by})")


def _read_labels(path: Path) -> list[dict]:
    """Rows with a label; rows left blank are skipped, a label that is not a number is refused."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise fail(f"cannot read {path}: {error.strerror}") from None
    if rows and not {"prediction_id", "label"} <= set(rows[0]):
        raise fail(f"{path} needs the columns prediction_id and label")
    items = []
    for number, row in enumerate(rows, start=2):
        text = (row.get("label") or "").strip()
        if not text:
            continue
        try:
            items.append({"prediction_id": row["prediction_id"].strip(), "label": int(text)})
        except ValueError:
            raise fail(f"{path}, line {number}: label {text!r} is not an integer") from None
    return items


def feedback(
    labels: Path = typer.Argument(..., help="CSV with prediction_id and label columns."),
    model: str = MODEL,
    url: str = URL,
    api_key: str = API_KEY,
) -> None:
    """Send labels by prediction id: each becomes a training sample of the open mega-batch."""
    items = _read_labels(labels)
    if not items:
        raise fail(f"{labels} has no filled-in label")
    try:
        with _client(url, api_key) as client:
            answer = client.feedback(model, items)
    except LureError as error:
        raise fail(str(error.detail)) from None
    refused = [i for i in answer["items"] if i["status"] >= 400]
    for item in refused:
        typer.echo(f"{item['prediction_id']}: {item['status']} {item['detail']}", err=True)
    typer.echo(
        f"{model}: {answer['accepted']} new samples (chunk {answer['chunk']}), "
        f"{len(items) - answer['accepted'] - len(refused)} already labelled, {len(refused)} refused"
    )
