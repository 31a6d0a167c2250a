"""`refract eval --task det` writes detections.json and ground_truth.json in COCO format; the
reference evaluator, pycocotools' COCOeval, reads them and gives the same 12 stats as eval.json.

Data: `refract data synth --task det`; model: the demo warm start (a REC model: its detection
answers are poor but partly readable, so some boxes score and some do not)."""
import contextlib
import io
import json
import os
import sys

from interop_common import Workspace, refract

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    with Workspace() as w:
        refract("data", "synth", "--task", "det", "--num_samples", 24, "--seed", 5, "--output", w.path("data"))
        out = w.path("eval")
        refract("eval", "--model", os.path.join(SOURCE, "assets", "demo_warm_start"), "--task", "det",
                "--data_file_paths", w.path("data", "det_in_domain.jsonl"), "--question_template", "none",
                "--per_device_eval_batch_size", 24, "--max_new_tokens", 48, "--threads", 2, "--output_dir", out)
        report = json.load(open(os.path.join(out, "eval.json")))
        summary = report["summary"] if "summary" in report else report["datasets"][0]["summary"]
        detections = json.load(open(os.path.join(out, "detections.json")))
        assert detections, "the warm start boxed nothing: no detections to re-score"
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(os.path.join(out, "ground_truth.json"))
            dt = gt.loadRes(os.path.join(out, "detections.json"))
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        worst = 0.0
        for i, name in enumerate(NAMES):
            diff = abs(float(ev.stats[i]) - float(summary[name]))
            print(f"{name:6s} pycocotools {ev.stats[i]:.6f} refract {summary[name]:.6f}")
            worst = max(worst, diff)
        print(f"{len(detections)} detections on {len(gt.getImgIds())} images; max |diff| {worst:.3g}")
        assert worst <= 1e-12, f"stats differ from pycocotools by {worst}"
        assert any(summary[n] > 0 for n in NAMES), "every stat is 0: the comparison would be vacuous"


if __name__ == "__main__":
    sys.exit(main())
