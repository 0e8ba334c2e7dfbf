"""Run an exported ONNX version with ONNX Runtime alone, on scikit-learn's digits:

    python examples/run_onnx.py exported/digits-shufflenet-v2.onnx

The export takes uint8 (N, size, size, channels) images, as its model card says: its
preprocessing (mean, std, layout) is inside. The digits are made grayscale or RGB to match.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image
from sklearn.datasets import load_digits


def main() -> None:
    path = Path(sys.argv[1])
    card = json.loads(path.with_name(path.name + ".card.json").read_text())
    size, channels = card["preprocessing"]["size"], card["preprocessing"]["channels"]
    digits = load_digits()
    gray = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    mode = "RGB" if channels == 3 else "L"
    images = np.stack(
        [
            np.asarray(Image.fromarray(g).convert(mode).resize((size, size), Image.BILINEAR))
            for g in gray
        ]
    ).reshape(len(gray), size, size, channels)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"images": images})[0]
    accuracy = float((logits.argmax(1) == digits.target).mean())
    names = card["class_names"] or [str(i) for i in range(card["num_classes"])]
    print(
        f"{path.name}: version {card['version']} of {card['model']}, sha256 {card['sha256'][:12]}; "
        f"accuracy on all {len(images)} digits with ONNX Runtime {accuracy:.3f}; first image: "
        f"{names[int(logits[0].argmax())]}"
    )


if __name__ == "__main__":
    main()
